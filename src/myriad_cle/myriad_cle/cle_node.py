"""The CLE node: steps the back end's sim server (step_simulation) in lockstep with a brain.

Services (std_srvs/Trigger) ~/start, ~/pause, ~/stop, ~/reset (reset uses the `seed` parameter); ~/status
(std_msgs/String, JSON: state, time, steps, seed, sim_time, ee_position, error) at `status_rate` and on every change.
"""

from __future__ import annotations

import json
import threading

from rclpy.callback_groups import ReentrantCallbackGroup
from std_msgs.msg import String
from std_srvs.srv import Trigger

from myriad_cle.config import CLEConfig, load_config
from myriad_cle.engine import RUNNING, ClosedLoopEngine
from myriad_cle.remote import RemoteSim
from myriad_cle.transfer import load_brain
from myriad_runtime import workspace_path
from myriad_runtime.calls import in_thread
from myriad_runtime.node import BackendNode
from myriad_sim.spec import load_world


class CLENode(BackendNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("cle", **kwargs)
        defaults = {
            "experiment_file": "",
            "brain": "",
            "transfer_functions": "",
            "timestep": 0.0,
            "seed": 0,
            "object_count": 0,
            "duration": 0.0,
            "world_file": "worlds/tray.yaml",
            "autostart": False,
            "status_rate": 10.0,
        }
        p = {k: self.declare_parameter(k, v).value for k, v in defaults.items()}
        base = load_config(workspace_path(p["experiment_file"])) if p["experiment_file"] else CLEConfig()
        p["timestep"] = p["timestep"] or None
        self.config = base.merged(p).check("cle parameters (or experiment_file)")
        self.spec = load_world(workspace_path(p["world_file"]))
        self.sim = RemoteSim(self, self.spec, self.config.object_count)
        self.engine: ClosedLoopEngine | None = None
        self.error = ""
        self.status_pub = self.create_publisher(String, "~/status", 10)
        group = ReentrantCallbackGroup()
        for name in ("start", "pause", "stop", "reset"):
            self.create_service(Trigger, f"~/{name}", getattr(self, f"_{name}"), callback_group=group)
        if not 0 <= p["status_rate"] <= 1000:
            raise ValueError(f"parameter status_rate: expected 0 (off) .. 1000 Hz, got {p['status_rate']}")
        if p["status_rate"] > 0:
            self.create_timer(1.0 / p["status_rate"], self.publish_status, callback_group=group)
        self._wake, self._closing = threading.Event(), threading.Event()
        self._autostart = p["autostart"]
        self._worker = threading.Thread(target=self._loop, name="cle", daemon=True)
        self._worker.start()

    def status(self) -> dict:
        e = self.engine
        if e is None:
            return {"state": "error" if self.error else "starting", "error": self.error}
        return {
            "state": e.state,
            "time": e.time,
            "steps": e.steps,
            "seed": e.seed,
            "sim_time": e.robot.sim_time,
            "ee_position": [float(v) for v in e.robot.ee_position],
            "timestep": e.timestep,
            "error": self.error,
        }

    def publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.status())))

    def _loop(self) -> None:
        c = self.config
        try:
            brain = load_brain(c.brain)
            self.engine = ClosedLoopEngine(self.sim, brain, c.transfer_functions, c.timestep, c.seed)
        except Exception as exc:  # the node stays up and reports why it cannot run
            self.error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"CLE not ready: {self.error}")
            return
        self.get_logger().info(f"CLE ready: timestep {self.engine.timestep:.6g} s, brain {c.brain}")
        if self._autostart:
            self.engine.start()
        while not self._closing.is_set():
            if self.engine.state != RUNNING:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                self.engine.run(c.duration or None)
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                self.get_logger().error(f"CLE stopped: {self.error}")
                self.engine.stop()
            self.publish_status()

    def _respond(self, res, ok: bool, message: str):
        res.success, res.message = ok, json.dumps({**self.status(), "message": message})
        self.publish_status()
        return res

    def _start(self, _req, res):
        if self.engine is None:
            return self._respond(res, False, "not ready: " + (self.error or "waiting for step_simulation"))
        try:
            self.engine.start()
        except RuntimeError as exc:
            return self._respond(res, False, str(exc))
        self._wake.set()
        return self._respond(res, True, "started")

    def _pause(self, _req, res):
        if self.engine is None:
            return self._respond(res, False, "not ready")
        self.engine.pause()
        return self._respond(res, True, "paused")

    def _stop(self, _req, res):
        if self.engine is None:
            return self._respond(res, False, "not ready")
        self.engine.stop()
        return self._respond(res, True, "stopped")

    async def _reset(self, _req, res):
        if self.engine is None:
            return self._respond(res, False, "not ready")
        seed = self.get_parameter("seed").value
        try:
            await in_thread(self, self.engine.reset, seed)  # it calls the sim server
        except Exception as exc:
            return self._respond(res, False, f"reset failed: {type(exc).__name__}: {exc}")
        self.error = ""
        return self._respond(res, True, f"reset with seed {seed}")

    def close(self) -> None:
        self._closing.set()
        if self.engine is not None:
            self.engine.stop()
        self._wake.set()
        self._worker.join(timeout=5.0)
        if self.engine is not None:
            self.engine.close()


def main(args: list[str] | None = None) -> None:
    from myriad_runtime.container import run_nodes

    run_nodes([CLENode], args)


if __name__ == "__main__":
    main()
