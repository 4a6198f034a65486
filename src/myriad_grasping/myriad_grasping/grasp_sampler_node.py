"""The grasp sampler node: claims work items, runs seeded grasp attempts, hands records to the logger."""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from visualization_msgs.msg import MarkerArray

from myriad_grasping.episode import Attempt, run_attempt, top_down
from myriad_grasping.ros_backend import RosCalls, RosGraspBackend
from myriad_grasping.sampling import GraspParams
from myriad_interfaces.msg import EntityState, GraspAttempt
from myriad_interfaces.srv import ClaimWork, StoreAttempt
from myriad_runtime import code_version, workspace_path
from myriad_runtime.calls import CallFailed
from myriad_runtime.node import BackendNode
from myriad_sim import recording, viz
from myriad_sim.camera import Camera
from myriad_sim.frames import frame_prefix, optical_pose
from myriad_sim.spec import load_world


def attempt_msg(
    a: Attempt, work: ClaimWork.Response, backend: str, camera: Camera | None = None, sim_time: float = 0.0
) -> GraspAttempt:
    """The record of one attempt, images and trajectory included, as the logger stores it; `camera` (the one that
    took the images) gives the camera pose, `sim_time` the episode's sim time at the last image."""
    m = GraspAttempt(
        attempt_key=f"{work.item_id}#0",
        campaign=work.campaign,
        item_id=work.item_id,
        item_index=work.item_index,
        attempt_index=0,
        backend=backend,
        seed=a.seed,
        params_json=json.dumps(a.params.to_dict(), sort_keys=True),
        extra_json=json.dumps(
            {
                "outcome": a.outcome,
                "grasp_executed": a.grasp_executed,
                "target": a.target,
                "moves": a.moves,
                "source": "collect",
            },
            sort_keys=True,
        ),  # fmt: skip
        success=bool(a.success),  # the record keeps it only for executed grasps (extra.grasp_executed)
        lifted_object=a.lifted_object,
        lift_height=a.lift_height,
        timings_json=json.dumps(a.timings),
        code_version=code_version(),
    )
    m.grasp.x, m.grasp.y, m.grasp.z, m.grasp.yaw = a.grasp.x, a.grasp.y, a.grasp.z, a.grasp.yaw
    for name, source, (x, y, z) in a.objects:
        e = EntityState(name=name, source=source)
        e.pose.position.x, e.pose.position.y, e.pose.position.z = x, y, z
        m.objects.append(e)
    pre, post = a.pre_images, a.post_images
    m.pre_rgb, m.pre_depth, m.pre_segmentation, m.camera_info = (
        pre.rgb,
        pre.depth,
        pre.segmentation,
        pre.camera_info,
    )
    m.post_rgb = post.rgb
    if camera is not None:
        p, o = m.camera_pose.position, m.camera_pose.orientation
        (p.x, p.y, p.z), (o.x, o.y, o.z, o.w) = optical_pose(camera)
    recording.to_msg(a.trajectory, m.trajectory)
    m.sim_time = sim_time
    return m


class GraspSamplerNode(BackendNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("grasp_sampler", **kwargs)
        self.declare_parameter("world_file", "worlds/tray.yaml")
        self.declare_parameter("params", "{}")
        self.declare_parameter("idle_period", 1.0)
        self.declare_parameter("service_timeout", 60.0)
        # Where the `learned` strategy's models are stored: this database at $MYRIAD_MONGO_URI (as the logger's).
        self.database = self.declare_parameter("database", "myriad").value
        self._models = None
        default_id = self.get_namespace().strip("/").replace("/", "_") or "b"
        self.backend_id = self.declare_parameter("backend_id", default_id).value
        self.prefix = self.declare_parameter("frame_prefix", frame_prefix(self.get_namespace())).value
        visualization = self.declare_parameter("visualization", True).value
        self.markers_pub = (
            self.create_publisher(MarkerArray, "markers", viz.LATCHED) if visualization else None
        )
        spec = load_world(workspace_path(self.get_parameter("world_file").value))
        self.region = spec.objects
        try:
            self.defaults = json.loads(self.get_parameter("params").value)
            GraspParams.from_dict(self.defaults, "parameter params")
        except json.JSONDecodeError as exc:
            raise ValueError(f"parameter params: expected a JSON object of grasp parameters: {exc}") from None
        self.calls = RosCalls(self, self.get_parameter("service_timeout").value)
        self.backend = RosGraspBackend(self.calls, Camera(spec.camera), spec.timestep)
        self.claim_cli = self.calls.client(ClaimWork, "claim_work")
        self.store_cli = self.calls.client(StoreAttempt, "store_attempt")
        self.stopping = threading.Event()
        self.worker = threading.Thread(target=self._loop, name="grasp_sampler", daemon=True)
        self.worker.start()

    def _loop(self) -> None:
        idle = self.get_parameter("idle_period").value
        while not self.stopping.is_set():
            try:
                work = self.calls.call(self.claim_cli, ClaimWork.Request())
                if not work.available:
                    self.stopping.wait(idle)
                    continue
                self._attempt(work)
            except CallFailed as exc:
                if self.stopping.is_set():
                    return
                self.get_logger().error(str(exc))
                self.stopping.wait(idle)
            except Exception:  # a bug must not leave a silent, idle back end: exit, the front end restarts it
                self.get_logger().fatal(f"grasp attempt failed unexpectedly:\n{traceback.format_exc()}")
                self.stopping.set()
                rclpy.try_shutdown(context=self.context)

    def _attempt(self, work) -> None:
        params = GraspParams.from_dict(
            {**self.defaults, **json.loads(work.params_json)}, f"work item {work.item_id}"
        )
        self.backend.planner = params.planner
        t0 = time.perf_counter()
        attempt = run_attempt(self.backend, params, work.seed, self.region.region_x, self.region.region_y,
                              self.model)  # fmt: skip
        attempt.timings["total"] = round(time.perf_counter() - t0, 4)
        if self.markers_pub is not None:
            g = attempt.grasp
            self.markers_pub.publish(
                viz.grasp_markers(
                    (g.x, g.y, g.z),
                    top_down(g.yaw),
                    viz.GRIPPER_OPENING,
                    attempt.success,
                    self.prefix,
                    Time(),
                )  # fmt: skip
            )
        sim_time = self.backend.episode_time(attempt.post_images.rgb.header.stamp)
        msg = attempt_msg(attempt, work, self.backend_id, self.backend.camera, sim_time)
        res = self.calls.call(self.store_cli, StoreAttempt.Request(attempt=msg))
        if not res.accepted:
            raise CallFailed("store_attempt", f"refused {work.item_id}: {res.message}")
        self.get_logger().info(f"{work.item_id}: {attempt.outcome} in {attempt.timings['total']:.2f} s")

    def model(self, version: str) -> Any:
        """The stored grasp model `version`, loaded from the database once (the `learned` strategy)."""
        if self._models is None:
            from myriad_learning.registry import ModelRegistry
            from myriad_storage.server import ENV_URI
            from myriad_storage.store import Store

            self._models = ModelRegistry(Store(os.environ.get(ENV_URI, ""), self.database))
        return self._models.load(version)

    def close(self) -> None:
        self.stopping.set()


def main(args: list[str] | None = None) -> None:
    from myriad_runtime.container import run_nodes

    run_nodes([GraspSamplerNode], args)


if __name__ == "__main__":
    main()
