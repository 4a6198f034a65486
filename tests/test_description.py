"""The back-end description shared by the front end and the launch file."""

from __future__ import annotations

import pytest
from conftest import WS

from myriad_frontend.description import DescriptionError, load_description

DESC = WS / "config" / "backend.yaml"


def test_description_renders_namespaced_backend():
    d = load_description(DESC)
    r = d.render(
        ws=WS,
        index=3,
        backend="b3",
        database="db",
        campaign="c",
        run_dir="/tmp/x",
    )
    assert r.namespace == "/myriad/b3"
    assert r.parameters["/myriad/b3/logger"]["ros__parameters"]["campaign"] == "c"
    assert [n.name for p in d.processes for n in p.nodes] == [
        "sim_server",
        "planner",
        "grasp_sampler",
        "logger",
    ]
    assert r.remappings == {"/clock": "/myriad/b3/clock"}
    assert "--params-file" in r.ros_args(WS / "p.yaml")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("  sim_server:\n    package", "  sim-server:\n    package"), "nodes.sim-server"),
        (
            lambda t: t.replace("package: myriad_planning", "package: myriad_no_such_pkg"),
            "myriad_no_such_pkg",
        ),
        (
            lambda t: t.replace("backend: [sim_server, planner,", "backend: [sim_server, plannr,"),
            "processes.backend",
        ),
        (lambda t: t + "\nnodes: [\n", "malformed YAML"),
        (lambda t: t.replace("${campaign}", "${campain}"), "campain"),
        (
            lambda t: t.replace("executor: lean", "executor: events"),
            "'executor': expected one of lean, rclpy",
        ),
    ],
)
def test_bad_description_names_the_problem(tmp_path, edit, message):
    bad = tmp_path / "backend.yaml"
    bad.write_text(edit(DESC.read_text()))
    with pytest.raises(DescriptionError, match=message.replace("$", r"\$")) as err:
        load_description(bad).render(ws=WS, index=0, backend="b0", database="d", campaign="c", run_dir="/r")
    assert str(bad) in str(err.value)


def test_closed_loop_profile_validates():
    d = load_description(WS / "config" / "backend_cle.yaml")
    r = d.render(ws=WS, index=1, backend="cle1", database="d", campaign="c", run_dir="/r")
    assert r.namespace == "/myriad/cle1"
    cle = r.parameters["/myriad/cle1/cle"]["ros__parameters"]
    assert cle["brain"].endswith("examples/closed_loop_reach.py:ProportionalBrain")


def test_closed_loop_profile_runs_through_the_front_end_launcher(tmp_path, ros_client):
    import json
    import os
    import time

    import numpy as np
    from std_msgs.msg import String

    from myriad_frontend.plan import backend_env, plan_backend
    from myriad_frontend.processes import BackendProcesses, clean_shared_memory

    d = load_description(WS / "config" / "backend_cle.yaml")
    values = {"ws": WS, "database": "", "campaign": ""}
    env = backend_env(WS, int(os.environ["ROS_DOMAIN_ID"]))
    b = BackendProcesses("b7", plan_backend(d, 7, values, tmp_path, env))
    b.start()
    try:
        client = ros_client("/myriad/cle7")
        statuses = []
        client.node.create_subscription(
            String, "cle/status", lambda m: statuses.append(json.loads(m.data)), 10
        )
        deadline = time.monotonic() + 60
        while not (statuses and statuses[-1].get("time", 0) >= 4.9) and time.monotonic() < deadline:
            assert not b.dead(), (tmp_path / "b7" / "brain.log").read_text()[-2000:]
            time.sleep(0.2)
        assert statuses and statuses[-1]["time"] >= 4.9, statuses[-1:]
        # The example brain drives the gripper centre to its default target in the 5 s the profile runs.
        assert np.linalg.norm(np.subtract(statuses[-1]["ee_position"], (0.55, 0.1, 0.35))) < 0.01
    finally:
        b.stop()
        clean_shared_memory()


def test_clean_shared_memory_removes_only_abandoned_files(tmp_path):
    import os
    import time

    from myriad_frontend.processes import clean_shared_memory

    old, fresh, held = (
        tmp_path / n for n in ("fastdds_port7001", "fastdds_port7002", "sem.fastdds_port7003_mutex")
    )
    for f in (old, fresh, held):
        f.write_bytes(b"x")
    past = time.time() - 120
    os.utime(old, (past, past))
    os.utime(held, (past, past))
    with open(held, "rb"):  # a live process (this one) has it open
        assert clean_shared_memory(tmp_path, min_age=30.0) == 1
    assert not old.exists() and fresh.exists() and held.exists()


def test_clean_shared_memory_keeps_the_files_of_a_process_closing_other_descriptors(tmp_path):
    """A live process that opens and closes other files meanwhile (a busy back end's sockets) keeps its
    shared-memory files: a descriptor closed while /proc is read must not hide the ones that stay open."""
    import os
    import threading
    import time

    from myriad_frontend.processes import clean_shared_memory

    held = tmp_path / "sem.fastdds_port7003_mutex"
    held.write_bytes(b"x")
    past = time.time() - 120
    os.utime(held, (past, past))
    others = [open(tmp_path / f"other{i}", "w") for i in range(300)]  # closed below
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            open(tmp_path / "churn", "w").close()

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        with open(held, "rb"):
            removed = sum(clean_shared_memory(tmp_path, min_age=30.0) for _ in range(50))
    finally:
        stop.set()
        thread.join()
        for f in others:
            f.close()
    assert removed == 0 and held.exists()
