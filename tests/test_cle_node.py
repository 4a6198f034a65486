"""The CLE node with real processes: a sim server and a CLE node in /test_cle, driven through their services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

WS = Path(__file__).resolve().parents[1]
NS = "/test_cle"
TARGET = np.array([0.55, 0.1, 0.35])  # ProportionalBrain's default


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "MYRIAD_WS": str(WS)}
    cmd = [
        sys.executable,
        "-m",
        "myriad_runtime.container",
        "--nodes",
        *args[:1],
        "--ros-args",
        "-r",
        f"__ns:={NS}",
        *args[1:],
    ]
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=WS, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def backend(request, tmp_path):
    procs = []
    request.addfinalizer(lambda: [stop(p) for p in procs])
    procs.append(
        start(["myriad_sim.sim_server_node:SimServerNode", "-p", "renderer:=tiny"], tmp_path / "sim.log")
    )
    procs.append(
        start(
            [
                "myriad_cle.cle_node:CLENode",
                "-p",
                f"brain:={WS / 'examples' / 'closed_loop_reach.py'}:ProportionalBrain",
                "-p",
                f"transfer_functions:={WS / 'examples' / 'reach_transfer_functions.py'}",
                "-p",
                "timestep:=0.025",
            ],
            tmp_path / "cle.log",
        )  # fmt: skip
    )
    return tmp_path


class Probe:
    """A test-side node in a private context: Trigger calls and the latest status."""

    def __init__(self):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("cle_probe", namespace=NS, context=self.context)
        self.clients = {
            n: self.node.create_client(Trigger, f"cle/{n}") for n in ("start", "pause", "stop", "reset")
        }
        self.status: dict = {}
        self.node.create_subscription(
            String, "cle/status", lambda m: setattr(self, "status", json.loads(m.data)), 10
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.Trigger = Trigger

    def call(self, name: str) -> tuple[bool, dict]:
        client = self.clients[name]
        assert client.wait_for_service(timeout_sec=10.0), f"cle/{name} not available"
        res = client.call(self.Trigger.Request(), timeout_sec=10.0)
        return res.success, json.loads(res.message)

    def wait(self, condition, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status and condition(self.status):
                return self.status
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last status {self.status}")

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def test_cle_node_steps_sim_server_in_lockstep(backend):
    probe = Probe()
    try:
        try:
            ready = probe.wait(lambda s: s["state"] == "idle", 20.0, "the CLE to be ready")
        except AssertionError:
            raise AssertionError(
                (backend / "cle.log").read_text() + (backend / "sim.log").read_text()
            ) from None
        sim_start = ready["sim_time"]
        ok, status = probe.call("start")
        assert ok and status["state"] == "running"
        probe.wait(lambda s: s["time"] >= 2.5, 15.0, "2.5 s of CLE time")
        assert probe.call("pause")[0]
        time.sleep(0.2)
        after = probe.call("pause")[1]
        time.sleep(0.2)
        assert (
            after["state"] == "paused" and probe.call("pause")[1]["steps"] == after["steps"]
        )  # sim held still
        assert after["sim_time"] - sim_start == pytest.approx(
            after["time"], abs=1e-9
        )  # physics only by the CLE
        assert after["steps"] * 0.025 == pytest.approx(after["time"])
        assert np.linalg.norm(np.array(after["ee_position"]) - TARGET) < 0.01
        ok, status = probe.call("reset")
        assert ok and status["state"] == "idle" and status["time"] == 0.0 and status["steps"] == 0
        assert probe.call("stop")[0]
        ok, status = probe.call("start")
        assert not ok and "reset" in status["message"]
    finally:
        probe.close()


def test_experiment_attaches_to_a_running_back_end(backend, tmp_path):
    from myriad import Experiment, ExperimentError
    from myriad_runtime.loading import load_module

    mesh = tmp_path / "box.obj"
    mesh.write_text(
        "".join(f"v {x * 0.02} {y * 0.02} {z * 0.02}\n" for x in (-1, 1) for y in (-1, 1) for z in (-1, 1))
        + "f 1 2 4 3\nf 5 7 8 6\nf 1 5 6 2\nf 3 4 8 7\nf 1 3 7 5\nf 2 6 8 4\n"
    )
    with Experiment(namespace=NS, world=WS / "worlds" / "tray.yaml", timeout=20.0) as exp:
        assert exp.reset(2, object_count=0) == []
        box = exp.load_object(mesh, (0.6, -0.05, 0.05), fixed=True)
        with pytest.raises(ExperimentError, match="scale: expected a positive number"):
            exp.load_object(mesh, (0.6, 0.1, 0.05), scale=0)
        with pytest.raises(ExperimentError, match="pose: .* outside the workspace"):
            exp.load_object(mesh, (0.6, 0.1, 3.0))
        image = exp.camera()
        u, v = image.project(box.position)
        assert image.segmentation[int(v), int(u)] == box.body_id
        assert 0.0 <= exp.close_gripper() < 0.2 and exp.open_gripper() > 0.9
        brain = load_module(WS / "examples" / "closed_loop_reach.py", "brain").ProportionalBrain()
        trace = exp.run(brain, WS / "examples" / "reach_transfer_functions.py", duration=2.5, timestep=0.025)
        assert len(trace.times) == 100 and np.linalg.norm(trace.ee_positions[-1] - TARGET) < 0.01
        exp.remove_object(box.name)
        assert exp.objects() == {}
