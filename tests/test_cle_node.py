"""The CLE node with real processes: a sim server and a CLE node in /test_cle, driven through their services."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import dds_participants

WS = Path(__file__).resolve().parents[1]
NS = "/test_cle"
TARGET = np.array([0.55, 0.1, 0.35])  # ProportionalBrain's default


@pytest.fixture
def backend(node_procs):
    """A sim server and a CLE node with the example brain in /test_cle, each in its own process group."""
    node_procs(
        ["myriad_sim.sim_server_node:SimServerNode"], NS, {"sim_server": {"renderer": "tiny"}}, log="sim.log"
    )
    cle = {
        "brain": f"{WS / 'examples' / 'closed_loop_reach.py'}:ProportionalBrain",
        "transfer_functions": str(WS / "examples" / "reach_transfer_functions.py"),
        "timestep": 0.025,
    }
    node_procs(["myriad_cle.cle_node:CLENode"], NS, {"cle": cle}, log="cle.log")
    return node_procs.directory


class Probe:
    """The CLE's Trigger services and status topic, and the sim server's own time, through the shared RosClient."""

    def __init__(self, client):
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from myriad_interfaces.srv import StepSimulation

        self.client, self.String, self.Trigger, self.Step = client, String, Trigger, StepSimulation

    def call(self, name: str) -> tuple[bool, dict]:
        res = self.client.call(self.Trigger, f"cle/{name}", self.Trigger.Request(), timeout=20.0)
        return res.success, json.loads(res.message)

    def wait(self, condition, timeout: float) -> dict:
        msg = self.client.wait_message(
            self.String, "cle/status", lambda m: condition(json.loads(m.data)), timeout=timeout
        )
        return json.loads(msg.data)

    def sim_time(self) -> float:
        """The sim server's own time (a zero-step request steps nothing)."""
        t = self.client.call(self.Step, "step_simulation", self.Step.Request(steps=0), timeout=20.0).sim_time
        return t.sec + t.nanosec * 1e-9


def test_cle_node_steps_sim_server_in_lockstep(backend, ros_client):
    probe = Probe(ros_client(NS))
    try:
        ready = probe.wait(lambda s: s["state"] == "idle", 60.0)
    except AssertionError:
        raise AssertionError((backend / "cle.log").read_text() + (backend / "sim.log").read_text()) from None
    sim_start = probe.sim_time()
    assert ready["sim_time"] == pytest.approx(sim_start, abs=1e-9)
    ok, status = probe.call("start")
    assert ok and status["state"] == "running"
    probe.wait(lambda s: s["time"] >= 2.5, 60.0)
    assert probe.call("pause")[0]
    # Paused: the sim's own clock comes to rest (a step in flight may finish) and stays there over several
    # status periods (0.1 s each) ...
    readings = [probe.sim_time()]
    for _ in range(5):
        time.sleep(0.5)
        readings.append(probe.sim_time())
        if readings[-1] == readings[-2]:
            break
    assert readings[-1] == readings[-2], f"the sim kept moving while the CLE was paused: {readings}"
    held = readings[-1]
    # ... and every step of it was the CLE's: sim time advanced exactly by the CLE time.
    after = probe.wait(lambda s: s["state"] == "paused" and abs(s["time"] - (held - sim_start)) < 1e-9, 30.0)
    assert after["steps"] * 0.025 == pytest.approx(after["time"]) and after["time"] >= 2.5
    assert np.linalg.norm(np.array(after["ee_position"]) - TARGET) < 0.01
    ok, status = probe.call("reset")
    assert ok and status["state"] == "idle" and status["time"] == 0.0 and status["steps"] == 0
    assert probe.call("stop")[0]
    ok, status = probe.call("start")
    assert not ok and "reset" in status["message"]


def test_experiment_attaches_to_a_running_back_end(backend, tmp_path):
    from myriad import Experiment, ExperimentError
    from myriad_runtime.loading import load_module

    mesh = tmp_path / "box.obj"
    mesh.write_text(
        "".join(f"v {x * 0.02} {y * 0.02} {z * 0.02}\n" for x in (-1, 1) for y in (-1, 1) for z in (-1, 1))
        + "f 1 2 4 3\nf 5 7 8 6\nf 1 5 6 2\nf 3 4 8 7\nf 1 3 7 5\nf 2 6 8 4\n"
    )
    before = dds_participants()
    with Experiment(namespace=NS, world=WS / "worlds" / "tray.yaml", timeout=20.0) as exp:
        assert len(dds_participants()) == len(before) + 1
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
    # Closing releases the connection's DDS participant at once (a script that opens and closes connections
    # would pile them up, and past 32 on a host new processes are no longer discovered).
    deadline = time.monotonic() + 5.0
    while dds_participants() != before:
        assert time.monotonic() < deadline, f"participants {dds_participants()} after close, {before} before"
        time.sleep(0.1)


@pytest.mark.parametrize("rate", [float("inf"), -1.0])
def test_an_unusable_status_rate_is_refused_at_start(node_procs, rate):
    """status_rate .inf became a 0 s timer (thousands of status messages a second); a negative one turned the
    status off silently."""
    cle = {"brain": f"{WS / 'examples' / 'closed_loop_reach.py'}:ProportionalBrain",
           "transfer_functions": str(WS / "examples" / "reach_transfer_functions.py"), "status_rate": rate}  # fmt: skip
    proc = node_procs(["myriad_cle.cle_node:CLENode"], f"{NS}_rate", {"cle": cle}, log="rate.log")
    assert proc.wait(60) != 0
    log = (node_procs.directory / "rate.log").read_text()
    assert "parameter status_rate: expected 0 (off) .. 1000 Hz" in log, log[-2000:]
