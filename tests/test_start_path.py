"""The one start path (myriad_frontend.plan / run / launching): what `myriad collect` and the launch file start.

The launch file itself needs `launch`/`launch_ros`, which are not installable here; what it runs comes from
`launching.start_run`, and these tests run exactly those command lines, environments and parameter files."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml
from conftest import WS, discovery_report, free_port

from myriad_frontend.description import load_description
from myriad_frontend.launching import LaunchArgs, start_run, wait_command
from myriad_frontend.plan import ENV_DDS_PROFILES, backend_env, plan_backend
from myriad_frontend.processes import clean_shared_memory, ros_env, start_group, stop_groups
from myriad_storage.server import ENV_URI
from myriad_storage.store import Store

LAUNCH_FILE = WS / "launch" / "backends.launch.py"


@pytest.fixture
def db(storage_local_server):
    """URI of a database server of this test's own (conftest's storage_local_server)."""
    return storage_local_server.uri


def launch_args(uri: str, **kw: str) -> LaunchArgs:
    """The launch file's arguments as `ros2 launch ... k:=v` gives them (defaults for the others)."""
    return LaunchArgs.parse({"mongo_uri": uri, "database": "t", **kw})


def test_plan_has_no_node_rename_and_no_secret(tmp_path):
    desc = load_description(WS / "config" / "backend.yaml")
    env = backend_env(WS, 17, "mongodb://user:hunter2@127.0.0.1:1/")
    (plan,) = plan_backend(desc, 3, {"ws": str(WS), "database": "d", "campaign": "c"}, tmp_path, env)
    args = list(plan.cmd)
    assert args[1:6] == ["-m", "myriad_runtime.container", "--executor", "lean", "--nodes"]
    assert not any(a.startswith("__node") for a in args), args  # would rename every composed node
    ros = args[args.index("--ros-args") :]
    assert ros[:3] == ["--ros-args", "-r", "__ns:=/myriad/b3"] and "/clock:=/myriad/b3/clock" in ros
    params = yaml.safe_load(plan.params_file.read_text())
    assert set(params) == {f"/myriad/b3/{n}" for n in ("sim_server", "planner", "grasp_sampler", "logger")}
    assert "hunter2" not in plan.params_file.read_text() and "hunter2" not in " ".join(args)
    assert plan.env[ENV_URI].endswith("@127.0.0.1:1/") and plan.env["ROS_DOMAIN_ID"] == "17"
    assert plan.env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and plan.env["LP_NUM_THREADS"] == "1"
    assert plan.log_file == tmp_path / "b3" / "backend.log"


def test_processes_get_the_workspace_fast_dds_profiles(tmp_path, monkeypatch):
    """Back ends (launch or collect) and test processes read config/fastdds.xml: a service waits seconds, not
    Fast DDS's 100 ms, for a new client's match before answering (CI lost a first answer so). A user's own profile
    file wins; Fast DDS reports a file it cannot read, and reads ours without complaint."""
    ours = WS / "config" / "fastdds.xml"
    wait = ET.parse(ours).find(
        ".//{*}data_writer[@profile_name='service']/{*}qos/{*}reliability/{*}max_blocking_time"
    )
    assert wait is not None and int(wait.findtext("{*}sec")) >= 1
    monkeypatch.delenv(ENV_DDS_PROFILES, raising=False)
    assert backend_env(WS, 3)[ENV_DDS_PROFILES] == ros_env()[ENV_DDS_PROFILES] == str(ours)
    monkeypatch.setenv(ENV_DDS_PROFILES, "/elsewhere/mine.xml")
    assert backend_env(WS, 3)[ENV_DDS_PROFILES] == ros_env()[ENV_DDS_PROFILES] == "/elsewhere/mine.xml"
    broken = tmp_path / "broken.xml"
    broken.write_text("<dds><profiles>")
    participant = (
        "import rclpy; rclpy.init(); rclpy.create_node('profiles_probe').destroy_node(); rclpy.shutdown()"
    )
    for profiles, complaint in ((ours, False), (broken, True)):
        env = {**os.environ, ENV_DDS_PROFILES: str(profiles)}
        out = subprocess.run(
            [sys.executable, "-c", participant], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and ("XMLPARSER" in out.stdout + out.stderr) == complaint, out.stderr


def test_launch_file_uses_only_what_launching_provides():
    import myriad_frontend.launching as launching

    tree = ast.parse(LAUNCH_FILE.read_text())
    names = [
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module == "myriad_frontend.launching"
        for a in n.names
    ]
    assert names and all(hasattr(launching, n) for n in names), names
    assert "ARGUMENTS" in names  # its arguments are the ones LaunchArgs parses
    # launch_ros' Node(name=...) adds `-r __node:=NAME`, which renames every node of a composed process.
    assert "launch_ros" not in LAUNCH_FILE.read_text().split('"""', 2)[2]


@pytest.mark.timeout(400)
def test_launch_start_path_runs_two_backends_and_collects(db, tmp_path):
    """What the launch file starts for backends:=2, started as launch would (exact cmd and env): each composed
    process keeps its nodes' own names and parameters (as a user's `ros2 node list` and `ros2 param get` see
    them), both back ends store attempts, the watcher ends it."""
    args = launch_args(db, backends="2", attempts="6", seed="5", campaign=f"launch-{free_port()}")
    run, plans, summary = start_run(args)
    procs = []
    try:
        assert f"ROS_DOMAIN_ID {run.domain.domain_id}" in summary and "***" not in summary
        assert [p.label for p in plans] == ["b0.backend", "b1.backend"]
        procs = [start_group(list(p.cmd), p.log_file, {**os.environ, **p.env}) for p in plans]
        want = [
            f"/myriad/b{i}/{n}" for i in (0, 1) for n in ("sim_server", "planner", "grasp_sampler", "logger")
        ]
        probe = subprocess.run(
            [sys.executable, str(WS / "tests" / "ros_probe.py"), "--wait", *want, "--list", "/myriad/b1/logger",
             "--get", "/myriad/b1/logger:campaign,backend_id", "/myriad/b0/sim_server:renderer"],
            capture_output=True, text=True, timeout=200, env={**os.environ, "ROS_DOMAIN_ID": str(run.domain.domain_id)},
        )  # fmt: skip
        if probe.returncode != 0:
            pytest.fail(
                f"ros_probe (exit {probe.returncode}): {probe.stdout}{probe.stderr[-1500:]}\n"
                + discovery_report([p.pid for p in procs], [p.log_file for p in plans])
            )
        seen = json.loads(probe.stdout)
        logger_params = seen["list"]["/myriad/b1/logger"]
        assert "campaign" in logger_params and "mongo_uri" not in logger_params
        assert seen["get"]["/myriad/b1/logger"] == {"campaign": run.spec.name, "backend_id": "b1"}
        assert seen["get"]["/myriad/b0/sim_server"] == {"renderer": "tiny"}
        watcher = start_group(wait_command(run), tmp_path / "wait.log", {**os.environ, **run.env})
        assert watcher.wait(timeout=300) == 0, (tmp_path / "wait.log").read_text()[-2000:]
        docs = Store(db, "t").attempts({"campaign": run.spec.name})
        assert len(docs) == 6 and {d["backend"] for d in docs} == {"b0", "b1"}
        assert Store(db, "t").campaign(run.spec.name)["finished_at"] is not None
    finally:
        stop_groups(procs)
        clean_shared_memory()
        run.close()


def test_launch_arguments_are_checked(db):
    with pytest.raises(ValueError, match="launch argument backends: expected an integer, got 'zero'"):
        launch_args(db, backends="zero")
    with pytest.raises(ValueError, match="launch argument backends: expected a positive integer"):
        launch_args(db, backends="0")
    with pytest.raises(ValueError, match="launch argument seed: expected an integer"):
        launch_args(db, seed="1.5")
    with pytest.raises(ValueError, match="keep_running: expected true or false"):
        launch_args(db, keep_running="yes please")


def test_launch_file_under_real_launch(db, tmp_path):
    """Runs the launch file under the real `launch` when a full ROS 2 install provides it (not installable here)."""
    pytest.importorskip(
        "launch_ros", reason="the ROS 2 `launch_ros` package is not installable from PyPI here"
    )
    pytest.importorskip(
        "ros2launch", reason="the ROS 2 `ros2launch` package is not installable from PyPI here"
    )
    code = (
        "import sys; from ros2launch.api.api import launch_a_launch_file; "
        "sys.exit(launch_a_launch_file(launch_file_path=sys.argv[1], launch_file_arguments=sys.argv[2:], "
        "noninteractive=True))"
    )
    name = f"real-launch-{free_port()}"
    out = subprocess.run(
        [sys.executable, "-c", code, str(LAUNCH_FILE), "backends:=2", "attempts:=4", f"campaign:={name}",
         f"mongo_uri:={db}", "database:=t"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert len(Store(db, "t").attempts({"campaign": name})) == 4


@pytest.mark.timeout(400)
def test_collect_record_writes_a_rosbag2_mcap_per_backend(db, tmp_path):
    import subprocess

    from conftest import collect_command
    from rosbags.highlevel import AnyReader

    out = subprocess.run(
        collect_command(db, "--attempts", "4", "--backends", "2", "--record", str(tmp_path / "bags"), "--quiet"),
        capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    bags = sorted((tmp_path / "bags").glob("*.mcap"))
    assert [b.name.split("_")[0] for b in bags] == ["b0", "b1"], bags
    for bag in bags:
        with AnyReader([bag]) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
            types = {c.topic: c.msgtype for c in reader.connections}
        ns = f"/myriad/{bag.name.split('_')[0]}"
        assert (
            counts[f"{ns}/joint_states"] > 10 and types[f"{ns}/joint_states"] == "sensor_msgs/msg/JointState"
        )
        assert (
            counts[f"{ns}/camera/rgb/image"] >= 1
            and types[f"{ns}/camera/rgb/image"] == "sensor_msgs/msg/Image"
        )


def test_launch_refuses_a_learned_campaign_whose_model_does_not_exist(db):
    """As `myriad collect` does, before any back end starts (they died on their first claim, and respawned)."""
    name = f"launch-model-{free_port()}"
    args = launch_args(db, attempts="2", campaign=name, set="strategy=learned model_version=v99")
    with pytest.raises(ValueError, match="v99"):
        start_run(args)
    assert not (WS / "log" / "runs" / name).exists()
