"""The Experiment's back end over ROS: the services and actions of a running back end's namespace."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

import rclpy
from geometry_msgs.msg import Pose
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from myriad.types import CameraImage, MotionError, ObjectInfo, Quat, Vec3
from myriad_cle.remote import RemoteSim
from myriad_interfaces.action import ExecuteTrajectory, GripperCommand
from myriad_interfaces.msg import ResultCode
from myriad_interfaces.srv import (
    CaptureImages,
    DeleteEntity,
    GetEntityState,
    PlanMotion,
    SpawnEntity,
)
from myriad_runtime.calls import action_client, call_action, call_service, destroy_node
from myriad_sim.camera import Camera
from myriad_sim.image_codec import imgmsg_to_cv2
from myriad_sim.spec import WorldSpec
from myriad_sim.world import SpawnError

if TYPE_CHECKING:
    from myriad_cle.sim import RobotState


def pose_msg(position: Vec3, orientation: Quat) -> Pose:
    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in position)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in orientation)
    return p


class RosBackend:
    """A private rclpy context and node in `namespace`, spun in a background thread; calls block the caller."""

    def __init__(self, namespace: str, spec: WorldSpec, timeout: float = 30.0):
        self.spec, self.timeout = spec, timeout
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(f"experiment_{uuid.uuid4().hex[:8]}", namespace=namespace, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, name="experiment_ros", daemon=True)
        self._spin.start()
        self._sim = RemoteSim(self.node, spec, timeout=timeout)
        n = self.node
        self.clients = {
            name: n.create_client(srv, name)
            for name, srv in (
                ("spawn_entity", SpawnEntity),
                ("delete_entity", DeleteEntity),
                ("get_entity_state", GetEntityState),
                ("capture_images", CaptureImages),
                ("plan", PlanMotion),
            )
        }
        self.actions = {
            "gripper_command": action_client(n, GripperCommand, "gripper_command"),
            "execute_trajectory": action_client(n, ExecuteTrajectory, "execute_trajectory"),
        }
        self.fixed = {"robot"} | {m.name for m in spec.models}
        self.camera = Camera(spec.camera)

    def _call(self, name: str, request: Any) -> Any:
        return call_service(self.clients[name], request, self.timeout)

    def _action(self, name: str, goal: Any) -> Any:
        return call_action(self.actions[name], goal, self.timeout)

    def reset(self, seed: int, object_count: int) -> None:
        self._sim.reset(seed, object_count)  # through the CLE's adapter: robot_state's time is the episode's

    def spawn(
        self,
        name: str,
        source: str,
        position: Vec3,
        orientation: Quat,
        scale: float,
        mass: float,
        fixed: bool,
    ) -> None:
        req = SpawnEntity.Request(
            name=name,
            source=source,
            pose=pose_msg(position, orientation),
            scale=scale,
            mass=mass,
            fixed=fixed,
        )
        res = self._call("spawn_entity", req)
        if not res.success:
            raise SpawnError(res.message)

    def delete(self, name: str) -> None:
        res = self._call("delete_entity", DeleteEntity.Request(name=name))
        if not res.success:
            raise KeyError(res.message)

    def objects(self) -> list[ObjectInfo]:
        res = self._call("get_entity_state", GetEntityState.Request())
        out = []
        for s in res.states:
            if s.name not in self.fixed:
                p, o = s.pose.position, s.pose.orientation
                out.append(ObjectInfo(s.name, s.source, s.body_id, (p.x, p.y, p.z), (o.x, o.y, o.z, o.w)))
        return out

    def capture(self) -> CameraImage:
        res = self._call("capture_images", CaptureImages.Request())
        images = (imgmsg_to_cv2(res.rgb), imgmsg_to_cv2(res.depth), imgmsg_to_cv2(res.segmentation))
        return CameraImage(*images, self.camera.intrinsics, self.camera)

    def robot_state(self) -> RobotState:
        return self._sim.observe()

    def move(
        self,
        goal_type: str,
        joints: Any = (),
        pose: tuple[Vec3, Quat] | None = None,
        seed: int = 0,
        max_contact_force: float = 0.0,
    ) -> bool:
        """Plan (with the motion's seed), then execute_trajectory: a guarded move when max_contact_force > 0.
        Returns whether it stopped on contact."""
        req = PlanMotion.Request(goal_type=goal_type, joint_goal=[float(v) for v in joints], seed=seed)
        if pose is not None:
            req.pose_goal = pose_msg(*pose)
        plan = self._call("plan", req)
        if plan.error_code != ResultCode.SUCCESS:
            raise MotionError(f"{goal_type} motion: {plan.message} (error code {plan.error_code})")
        goal = ExecuteTrajectory.Goal(trajectory=plan.trajectory, max_contact_force=max_contact_force)
        res = self._action("execute_trajectory", goal)
        if res.error_code != ResultCode.SUCCESS:
            raise MotionError(f"{goal_type} motion: execution failed: {res.message}", planned=True)
        return res.stopped_on_contact

    def gripper(self, opening: float, force: float) -> float:
        return self._action(
            "gripper_command", GripperCommand.Goal(position=opening, max_effort=force)
        ).position

    def sim(self, object_count: int) -> RemoteSim:
        return RemoteSim(self.node, self.spec, object_count, self.timeout)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        destroy_node(self.node)
        rclpy.try_shutdown(context=self.context)
