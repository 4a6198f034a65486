"""The sim server node (the gazebo_ros role): physics, /clock, joint states, camera, entity services."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from geometry_msgs.msg import Pose
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import ReentrantCallbackGroup
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from myriad_interfaces.msg import EntityState as EntityStateMsg
from myriad_interfaces.srv import (
    CaptureImages,
    DeleteEntity,
    GetEntityState,
    GetTrajectory,
    ResetWorld,
    SpawnEntity,
    StepSimulation,
)
from myriad_runtime import workspace_path
from myriad_runtime.calls import awaitable
from myriad_runtime.loading import load_object
from myriad_runtime.node import BackendNode
from myriad_sim import recording, viz
from myriad_sim.clock import time_msg
from myriad_sim.config import finite_array, shown
from myriad_sim.description import robot_description
from myriad_sim.frames import CAMERA_OPTICAL, FrameTree, frame_prefix
from myriad_sim.image_codec import cv2_to_imgmsg
from myriad_sim.spec import load_world
from myriad_sim.world import RENDERERS, SpawnError, World

if TYPE_CHECKING:
    import rclpy.task

    from myriad_sim.camera import Frame
    from myriad_sim.world import EntityState


def entity_msg(s: EntityState) -> EntityStateMsg:
    m = EntityStateMsg(name=s.name, source=s.source, body_id=s.body)
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in s.position)
    o = m.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in s.orientation)
    m.twist.linear.x, m.twist.linear.y, m.twist.linear.z = (float(v) for v in s.linear_velocity)
    m.twist.angular.x, m.twist.angular.y, m.twist.angular.z = (float(v) for v in s.angular_velocity)
    return m


def pose_tuple(p: Pose) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    o = p.orientation
    quat = (o.x, o.y, o.z, o.w) if (o.x, o.y, o.z, o.w) != (0.0, 0.0, 0.0, 0.0) else (0.0, 0.0, 0.0, 1.0)
    return (p.position.x, p.position.y, p.position.z), quat


# Joint states kept by the publisher for reliable repair. Faster than real time, a motion publishes ~50 per second
# of sim time within ~0.1 s of wall time: with a depth of 10 a loaded subscriber (a recorder) lost some for good,
# overwritten before their repair (7 of 18 runs of the recorder test beside three busy loops; none of 22 with 100).
JOINT_STATES_DEPTH = 100

TRAJECTORY_PARAMETERS = (
    ("trajectory_rate", 10.0, "samples per second of sim time of each attempt's trajectory (get_trajectory); it "
     "must divide the physics rate; 0: none"),
    ("trajectory_camera_rate", 0.0, "camera frames per second of sim time recorded with the trajectory; it must "
     "divide trajectory_rate; 0: none (rendering costs throughput)"),
    ("trajectory_camera_size", 128, "pixels a side of the recorded camera frames"),
)  # fmt: skip


class SimServerNode(BackendNode):
    """Owns one World. PyBullet (and its EGL context) is used from one physics thread only: services, timers and
    the controllers run their world work there (`physics_async`, awaited; `physics` from other threads)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("sim_server", **kwargs)
        self.stopping = False
        self.declare_parameter("world_file", "worlds/tray.yaml")
        self.declare_parameter("renderer", "auto")
        self.declare_parameter("clock_rate", 100.0)
        self.declare_parameter("joint_state_rate", 50.0)
        self.declare_parameter("camera_rate", 0.0)
        self.declare_parameter("real_time_factor", 0.0)
        self.declare_parameter("controllers", "myriad_control.controller:Controllers")
        self.declare_parameter("tf_rate", 20.0)
        self.declare_parameter("cloud_stride", 2)
        self.declare_parameter("visualization", True)
        for name, default, text in TRAJECTORY_PARAMETERS:
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        self.prefix = self.declare_parameter("frame_prefix", frame_prefix(self.get_namespace())).value
        p = {n: self.get_parameter(n).value for n in self._parameters}
        if p["renderer"] not in RENDERERS:
            raise ValueError(f"parameter renderer: expected auto, egl or tiny, got {p['renderer']!r}")
        for name in ("clock_rate", "joint_state_rate", "camera_rate", "real_time_factor", "tf_rate"):
            if p[name] < 0:
                raise ValueError(f"parameter {name}: expected a non-negative number, got {p[name]}")
        world_file = workspace_path(p["world_file"])
        spec = load_world(world_file)
        self._physics = ThreadPoolExecutor(1, thread_name_prefix="physics")
        self._jobs: dict[str, Future] = {}  # the timers' last physics job each
        self.world = self.physics(World, spec, p["renderer"])
        recording.attach(self.world, p["trajectory_rate"], p["trajectory_camera_rate"],
                         p["trajectory_camera_size"], prefix="parameter ")  # fmt: skip
        self.get_logger().info(
            f"world {world_file.name}: {len(self.world.entities)} entities, {1 / spec.timestep:.0f} Hz physics, "
            f"renderer {self.world.renderer_name}{' (EGL plugin did not load)' if p['renderer'] == 'auto' and self.world.renderer_name == 'tiny' else ''}"
        )
        if p["cloud_stride"] < 1:
            raise ValueError(f"parameter cloud_stride: expected a positive integer, got {p['cloud_stride']}")
        self.viz, self.cloud_stride = bool(p["visualization"]), int(p["cloud_stride"])
        self.optical_frame = self.prefix + CAMERA_OPTICAL
        dt = spec.timestep
        p["tf_rate"] = p["tf_rate"] if self.viz else 0.0
        self._every = {
            k: max(1, round(1.0 / (p[r] * dt))) if p[r] > 0 else 0
            for k, r in (
                ("clock", "clock_rate"),
                ("joints", "joint_state_rate"),
                ("camera", "camera_rate"),
                ("tf", "tf_rate"),
            )
        }
        self.clock_pub = self.create_publisher(Clock, "clock", 10)
        self.joint_pub = self.create_publisher(JointState, "joint_states", JOINT_STATES_DEPTH)
        self.image_pubs = {
            k: self.create_publisher(Image, f"camera/{k}/image", 2) for k in ("rgb", "depth", "segmentation")
        }
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", 2)
        if self.viz:
            self.frames = self.physics(FrameTree, self.world)
            self._tf_time, self.tf_messages = -1.0, viz.TfMessages(self.prefix)
            self.tf_pub = self.create_publisher(TFMessage, "/tf", 100)
            self.points_pub = self.create_publisher(PointCloud2, "camera/points", 2)
            cam = spec.camera
            self.clouds = viz.PointClouds(
                self.world.camera.intrinsics, cam.height, cam.width, cam.far, self.cloud_stride
            )
            self.markers_pub = self.create_publisher(MarkerArray, "markers", viz.LATCHED)
            description = robot_description(spec.robot.model)
            self.create_publisher(String, "robot_description", viz.LATCHED).publish(String(data=description))
            static = self.physics(self.frames.static)
            self.create_publisher(TFMessage, "/tf_static", viz.LATCHED).publish(
                self.tf_messages(static, time_msg(self.world.clock_time))
            )
            self.physics(self.publish_scene)
        group = ReentrantCallbackGroup()
        for srv_type, name, callback in (
            (SpawnEntity, "spawn_entity", self._spawn),
            (DeleteEntity, "delete_entity", self._delete),
            (GetEntityState, "get_entity_state", self._get_state),
            (ResetWorld, "reset_world", self._reset),
            (CaptureImages, "capture_images", self._capture),
            (StepSimulation, "step_simulation", self._step_physics),
            (GetTrajectory, "get_trajectory", self._trajectory),
        ):
            self.create_service(srv_type, name, self._on_physics(callback), callback_group=group)
        if p["controllers"]:
            self.controllers = load_object(p["controllers"], "parameter controllers")(self, self)
        self.rtf = p["real_time_factor"]
        if self.rtf > 0:
            self._pace_from_now()
            self.create_timer(0.01, self._free_run, callback_group=group)
        else:  # paused between requests: keep the last state visible to late subscribers
            self.create_timer(0.1, self._publish_paused_state, callback_group=group)
        self.physics(self.publish_state)

    def physics(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run fn on the physics thread and return its result (exceptions propagate to the caller); for other
        threads only (on the physics thread it would wait for itself)."""
        return self._physics.submit(fn, *args, **kwargs).result()

    def physics_async(self, fn: Callable[..., Any], *args: Any) -> rclpy.task.Future:
        """fn(*args) on the physics thread, as a future an `async def` callback awaits holding no executor thread
        (a motion runs for seconds: cancel requests and other calls are served meanwhile)."""
        return awaitable(self, self._physics.submit(fn, *args))

    def _on_physics(self, callback):
        """A service callback run on the physics thread and awaited: it uses the world directly. An unexpected
        error fails the request (logged with its traceback) instead of ending the process."""

        async def run(req: Any, res: Any) -> Any:
            try:
                return await self.physics_async(callback, req, res)
            except Exception as exc:
                self.get_logger().error(f"{callback.__name__[1:]} failed: {traceback.format_exc()}")
                res.success, res.message = False, f"internal error: {exc!r}"
                return res

        return run

    def _physics_job(self, kind: str, fn, *args) -> None:
        """A timer's physics work, queued without waiting for it; skipped while its last one is still queued or
        running (a motion publishes as it steps)."""
        last = self._jobs.get(kind)
        if last is None or last.done():
            self._jobs[kind] = job = self._physics.submit(fn, *args)
            job.add_done_callback(self._report_failure)

    def _report_failure(self, job: Future) -> None:
        if job.exception() is not None:
            self.get_logger().error(f"physics job failed: {job.exception()!r}")

    # -- stepping -------------------------------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        """Advance physics n steps, publishing clock, joint states and camera at their rates (physics thread);
        clock and joint states only while someone subscribes (the paused state is published every 0.1 s)."""
        for _ in range(n):
            self.world.step(1)
            k = self.world.steps
            if (
                self._every["clock"]
                and k % self._every["clock"] == 0
                and self.clock_pub.get_subscription_count()
            ):
                self.clock_pub.publish(Clock(clock=time_msg(self.world.clock_time)))
            if (
                self._every["joints"]
                and k % self._every["joints"] == 0
                and self.joint_pub.get_subscription_count()
            ):
                self.publish_joints()
            if self._every["camera"] and k % self._every["camera"] == 0:
                self.publish_images(self.world.capture())
            if self._every["tf"] and k % self._every["tf"] == 0:
                self.publish_tf()

    def _pace_from_now(self) -> None:
        """Free running keeps sim time at real_time_factor x wall time from now on (after a reset too)."""
        self._wall_start = time.monotonic() - self.world.sim_time / self.rtf

    def _free_run(self) -> None:
        target = (time.monotonic() - self._wall_start) * self.rtf
        due = int((target - self.world.sim_time) / self.world.spec.timestep)
        if due > 0:
            self._physics_job("free_run", self.advance, min(due, 240))

    # -- publishing -----------------------------------------------------------------------------------
    def _publish_paused_state(self) -> None:
        """publish_state on the physics thread, only when anyone listens (else not even a physics thread hop)."""
        if (
            self.clock_pub.get_subscription_count()
            or self.joint_pub.get_subscription_count()
            or (self.viz and self.tf_pub.get_subscription_count())
        ):
            self._physics_job("paused_state", self.publish_state)

    def publish_state(self) -> None:
        """Clock, joint states and TF now, to whoever subscribes."""
        if self.clock_pub.get_subscription_count():
            self.clock_pub.publish(Clock(clock=time_msg(self.world.clock_time)))
        if self.joint_pub.get_subscription_count():
            self.publish_joints()
        if self.viz:
            self.publish_tf()

    def publish_tf(self) -> None:
        """Robot links and objects at the current sim time (once per sim time: tf2 drops repeated stamps), when
        anyone listens."""
        if self.world.clock_time == self._tf_time or not self.tf_pub.get_subscription_count():
            return
        self._tf_time = self.world.clock_time
        self.tf_pub.publish(self.tf_messages(self.frames.dynamic(), time_msg(self._tf_time)))

    def publish_scene(self) -> None:
        """Markers of the fixed models, the objects and the workspace (after every change of the entities)."""
        if self.viz:
            self.markers_pub.publish(
                viz.scene_markers(self.world, self.prefix, time_msg(self.world.clock_time))
            )

    def joint_state(self) -> JointState:
        """The robot's joint states now, stamped with sim time."""
        names, pos, vel, eff = self.world.robot.all_joint_states()
        msg = JointState(name=names, position=pos, velocity=vel, effort=eff)
        msg.header.stamp = time_msg(self.world.clock_time)
        return msg

    def publish_joints(self) -> None:
        self.joint_pub.publish(self.joint_state())

    def camera_info(self) -> CameraInfo:
        s = self.world.camera.spec
        k = self.world.camera.intrinsics
        info = CameraInfo(width=s.width, height=s.height, distortion_model="plumb_bob", d=[0.0] * 5)
        info.k = k.flatten().tolist()
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
        info.header.frame_id = self.optical_frame
        info.header.stamp = time_msg(self.world.clock_time)
        return info

    def publish_images(self, frame: Frame) -> tuple[Image, Image, Image, CameraInfo]:
        stamp = time_msg(self.world.clock_time)
        msgs = (
            cv2_to_imgmsg(frame.rgb, "rgb8", self.optical_frame, stamp),
            cv2_to_imgmsg(frame.depth, "32FC1", self.optical_frame, stamp),
            cv2_to_imgmsg(frame.segmentation, "32SC1", self.optical_frame, stamp),
        )
        for key, msg in zip(("rgb", "depth", "segmentation"), msgs):
            self.image_pubs[key].publish(msg)
        info = self.camera_info()
        self.info_pub.publish(info)
        if self.viz and self.points_pub.get_subscription_count():
            self.points_pub.publish(self.clouds(frame.depth, frame.rgb, msgs[0].header))
        return (*msgs, info)

    # -- services -------------------------------------------------------------------------------------
    def _spawn(self, req, res):
        position, orientation = pose_tuple(req.pose)
        try:
            e = self.world.spawn(req.name, req.source, position, orientation, req.scale, req.mass, req.fixed)
            res.success, res.name, res.body_id, res.message = True, e.name, e.body, f"spawned {e.name}"
            self.publish_scene()
        except SpawnError as exc:
            res.success, res.message = False, str(exc)
        return res

    def _delete(self, req, res):
        try:
            self.world.delete(req.name)
            self.publish_scene()
            res.success, res.message = True, f"deleted {req.name}"
        except (KeyError, ValueError) as exc:
            res.success, res.message = False, str(exc.args[0])
        return res

    def _get_state(self, req, res):
        try:
            names = list(req.names) or list(self.world.entities)
            res.states = [entity_msg(self.world.state(n)) for n in names]
            res.joint_state = self.joint_state()
            res.success = True
        except KeyError as exc:
            res.success, res.message = False, str(exc.args[0])
        return res

    def _reset(self, req, res):
        try:
            objects = self.world.reset(req.seed, req.object_count, list(req.object_ids))
            if self.rtf > 0:
                self._pace_from_now()
            self.publish_state()
            self.publish_scene()
            res.objects = [entity_msg(s) for s in objects]
            res.sim_time = time_msg(self.world.clock_time)
            res.episode_start = time_msg(self.world.episode_start)
            res.success, res.message = True, f"reset with seed {req.seed}: {len(objects)} objects"
        except (SpawnError, ValueError) as exc:
            res.success, res.message = False, str(exc)
        return res

    def _capture(self, req, res):
        frame = self.world.capture()
        res.rgb, res.depth, res.segmentation, res.camera_info = self.publish_images(frame)
        res.success = True
        return res

    def _trajectory(self, req, res):
        recorder = self.world.recorder
        if recorder is None:
            res.message = "not recording: parameter trajectory_rate is 0"
        else:
            recording.to_msg(recorder.recording(), res.trajectory)
            res.message = f"{len(res.trajectory.values) // len(res.trajectory.columns)} samples"
        res.success = True
        return res

    def _step_physics(self, req, res):
        robot = self.world.robot
        cmd = req.command
        if cmd.name:
            arm = list(robot.spec.arm_joints)
            unknown = [n for n in cmd.name if n not in arm]
            if unknown or finite_array(cmd.position, (len(cmd.name),)) is None:
                res.success = False
                res.message = (
                    f"command: unknown joints {unknown}, or not one finite position per name "
                    f"{shown(cmd.position)}; arm joints {arm}"
                )
                return res
            targets = robot.arm_targets.copy()
            for n, q in zip(cmd.name, cmd.position):
                targets[arm.index(n)] = q
            robot.set_arm_targets(targets)
        if req.gripper >= 0:
            robot.set_gripper(min(req.gripper, 1.0), robot.gripper_force)
        self.advance(req.steps)
        if self.viz:
            self.publish_tf()
        res.joint_state = self.joint_state()
        p, q = robot.tool_pose()
        res.end_effector.position.x, res.end_effector.position.y, res.end_effector.position.z = (
            float(v) for v in p
        )
        o = res.end_effector.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in q)
        res.sim_time = time_msg(self.world.clock_time)
        res.success = True
        return res

    def close(self) -> None:
        """Shutdown begins: running trajectories end at the next physics step (their goals abort)."""
        self.stopping = True

    def destroy_node(self) -> None:
        self.physics(self.world.close)
        self._physics.shutdown()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    from myriad_runtime.container import run_nodes

    run_nodes([SimServerNode], args)


if __name__ == "__main__":
    main()
