"""The grasp backend over a back end's ROS interfaces: sim server services, planner, controller actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose
from rclpy.action import ActionClient
from rclpy.node import Node

from myriad_grasping.episode import MoveResult, Vec3
from myriad_interfaces.action import ExecuteTrajectory, GripperCommand
from myriad_interfaces.msg import ResultCode
from myriad_interfaces.srv import CaptureImages, GetEntityState, GetTrajectory, PlanMotion, ResetWorld
from myriad_runtime.calls import action_client, call_action, call_service
from myriad_sim import recording
from myriad_sim.camera import Camera, DepthView
from myriad_sim.clock import episode_time
from myriad_sim.image_codec import imgmsg_to_cv2

if TYPE_CHECKING:
    from rclpy.client import Client


class RosCalls:
    """A node's clients and blocking calls (myriad_runtime.calls) with one timeout, from the node's worker thread."""

    def __init__(self, node: Node, timeout: float = 60.0):
        self.node, self.timeout = node, timeout

    def client(self, srv_type: Any, name: str) -> Client:
        return self.node.create_client(srv_type, name)

    def action(self, action_type: Any, name: str) -> ActionClient:
        return action_client(self.node, action_type, name)

    def call(self, client: Client, request: Any, check: bool = False) -> Any:
        return call_service(client, request, self.timeout, check)

    def run_action(self, client: ActionClient, goal: Any) -> Any:
        return call_action(client, goal, self.timeout)


class RosGraspBackend:
    """GraspBackend through ROS: reset/capture/states on the sim server, motions via planner + controller."""

    def __init__(self, calls: RosCalls, camera: Camera, timestep: float, planner: str = ""):
        self.calls, self.camera, self.timestep, self.planner = calls, camera, timestep, planner
        self.episode_start = Time()
        self.reset_cli = calls.client(ResetWorld, "reset_world")
        self.capture_cli = calls.client(CaptureImages, "capture_images")
        self.state_cli = calls.client(GetEntityState, "get_entity_state")
        self.trajectory_cli = calls.client(GetTrajectory, "get_trajectory")
        self.plan_cli = calls.client(PlanMotion, "plan")
        self.execute = calls.action(ExecuteTrajectory, "execute_trajectory")
        self.gripper_action = calls.action(GripperCommand, "gripper_command")
        self.object_names: list[str] = []
        self.object_bodies: dict[str, int] = {}

    def reset(self, seed: int, object_count: int) -> list[tuple[str, str, Vec3]]:
        res = self.calls.call(
            self.reset_cli, ResetWorld.Request(seed=seed, object_count=object_count), check=True
        )
        self.episode_start = res.episode_start
        self.object_names = [o.name for o in res.objects]
        self.object_bodies = {o.name: o.body_id for o in res.objects}
        return [
            (o.name, o.source, (o.pose.position.x, o.pose.position.y, o.pose.position.z)) for o in res.objects
        ]

    def episode_time(self, stamp: Time) -> float:
        """The episode's sim time at `stamp` (the sim server's clock runs on across resets)."""
        return episode_time(stamp, self.episode_start, self.timestep)

    def capture(self) -> Any:
        return self.calls.call(self.capture_cli, CaptureImages.Request(), check=True)

    def view(self, images: Any) -> DepthView:
        depth, seg = imgmsg_to_cv2(images.depth), imgmsg_to_cv2(images.segmentation)
        return DepthView(self.camera, depth, seg, self.object_bodies, imgmsg_to_cv2(images.rgb, rgb=True))

    def move(
        self,
        kind: str,
        position: Vec3,
        orientation: Sequence[float],
        seed: int,
        max_contact_force: float = 0.0,
    ) -> MoveResult:
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = position
        o = pose.orientation
        o.x, o.y, o.z, o.w = orientation
        req = PlanMotion.Request(goal_type=kind, pose_goal=pose, planner=self.planner, seed=seed)
        plan = self.calls.call(self.plan_cli, req)
        result = MoveResult(
            plan.error_code == ResultCode.SUCCESS, plan.message, plan.planning_time, plan.path_length, plan.planner,
            refused=plan.error_code != ResultCode.SUCCESS,
        )  # fmt: skip
        if not result.ok:
            return result
        goal = ExecuteTrajectory.Goal(trajectory=plan.trajectory, max_contact_force=max_contact_force)
        done = self.calls.run_action(self.execute, goal)
        if done.error_code != ResultCode.SUCCESS:
            result.ok, result.message = False, f"execution: {done.message}"
        result.contact = done.stopped_on_contact
        return result

    def gripper(self, opening: float, force: float) -> tuple[float, bool]:
        goal = GripperCommand.Goal(position=opening, max_effort=force)
        res = self.calls.run_action(self.gripper_action, goal)
        return res.position, res.stalled

    def object_positions(self) -> dict[str, Vec3]:
        res = self.calls.call(self.state_cli, GetEntityState.Request(names=self.object_names), check=True)
        return {s.name: (s.pose.position.x, s.pose.position.y, s.pose.position.z) for s in res.states}

    def trajectory(self) -> recording.Recording | None:
        res = self.calls.call(self.trajectory_cli, GetTrajectory.Request(), check=True)
        return recording.from_msg(res.trajectory)
