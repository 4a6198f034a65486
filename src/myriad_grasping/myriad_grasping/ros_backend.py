"""The grasp backend over a back end's ROS interfaces: sim server services, planner, controller actions."""

from __future__ import annotations

from typing import Any

from geometry_msgs.msg import Pose
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from myriad_grasping.episode import MoveResult, Vec3
from myriad_interfaces.action import ExecuteTrajectory, GripperCommand
from myriad_interfaces.srv import CaptureImages, GetEntityState, PlanMotion, ResetWorld
from myriad_runtime import wait_future
from myriad_sim.camera import Camera, DepthView
from myriad_sim.image_codec import imgmsg_to_cv2


class BackendError(RuntimeError):
    """A back-end service or action failed or did not answer in time."""


class RosCalls:
    """Blocking service/action calls from a worker thread while the node spins in its executor."""

    def __init__(self, node: Node, timeout: float = 60.0):
        self.node, self.timeout = node, timeout
        self.group = ReentrantCallbackGroup()

    def client(self, srv_type, name: str):
        return self.node.create_client(srv_type, name, callback_group=self.group)

    def action(self, action_type, name: str) -> ActionClient:
        return ActionClient(self.node, action_type, name, callback_group=self.group)

    def _wait(self, future, what: str):
        if not wait_future(future, self.timeout):
            raise BackendError(f"{what}: no answer within {self.timeout:.0f} s")
        return future.result()

    def call(self, client, request, what: str = ""):
        what = what or client.srv_name
        if not client.wait_for_service(timeout_sec=self.timeout):
            raise BackendError(f"{what}: service not available")
        return self._wait(client.call_async(request), what)

    def run_action(self, client: ActionClient, goal, what: str):
        if not client.wait_for_server(timeout_sec=self.timeout):
            raise BackendError(f"{what}: action server not available")
        handle = self._wait(client.send_goal_async(goal), what)
        if not handle.accepted:
            raise BackendError(f"{what}: goal rejected")
        return self._wait(handle.get_result_async(), what).result


class RosGraspBackend:
    """GraspBackend through ROS: reset/capture/states on the sim server, motions via planner + controller."""

    def __init__(self, calls: RosCalls, camera: Camera, planner: str = ""):
        self.calls, self.camera, self.planner = calls, camera, planner
        self.reset_cli = calls.client(ResetWorld, "reset_world")
        self.capture_cli = calls.client(CaptureImages, "capture_images")
        self.state_cli = calls.client(GetEntityState, "get_entity_state")
        self.plan_cli = calls.client(PlanMotion, "plan")
        self.execute = calls.action(ExecuteTrajectory, "execute_trajectory")
        self.gripper_action = calls.action(GripperCommand, "gripper_command")
        self.object_names: list[str] = []
        self.object_bodies: dict[str, int] = {}

    def reset(self, seed: int, object_count: int) -> list[tuple[str, str, Vec3]]:
        res = self.calls.call(
            self.reset_cli, ResetWorld.Request(seed=seed, object_count=object_count), "reset_world"
        )
        if not res.success:
            raise BackendError(f"reset_world: {res.message}")
        self.object_names = [o.name for o in res.objects]
        self.object_bodies = {o.name: o.body_id for o in res.objects}
        return [
            (o.name, o.source, (o.pose.position.x, o.pose.position.y, o.pose.position.z)) for o in res.objects
        ]

    def capture(self) -> Any:
        res = self.calls.call(self.capture_cli, CaptureImages.Request(), "capture_images")
        if not res.success:
            raise BackendError(f"capture_images: {res.message}")
        return res

    def view(self, images: Any) -> DepthView:
        depth, seg = imgmsg_to_cv2(images.depth), imgmsg_to_cv2(images.segmentation)
        return DepthView(self.camera, depth, seg, self.object_bodies)

    def move(
        self, kind: str, position: Vec3, orientation, seed: int, max_contact_force: float = 0.0
    ) -> MoveResult:
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = position
        o = pose.orientation
        o.x, o.y, o.z, o.w = orientation
        req = PlanMotion.Request(goal_type=kind, pose_goal=pose, planner=self.planner, seed=seed)
        plan = self.calls.call(self.plan_cli, req, "plan")
        result = MoveResult(
            plan.error_code == 1, plan.message, plan.planning_time, plan.path_length, plan.planner,
            refused=plan.error_code != 1,
        )  # fmt: skip
        if not result.ok:
            return result
        goal = ExecuteTrajectory.Goal(trajectory=plan.trajectory, max_contact_force=max_contact_force)
        done = self.calls.run_action(self.execute, goal, "execute_trajectory")
        if done.error_code != 0:
            result.ok, result.message = False, f"execution: {done.message}"
        result.contact = done.stopped_on_contact
        return result

    def gripper(self, opening: float, force: float) -> tuple[float, bool]:
        goal = GripperCommand.Goal(position=opening, max_effort=force)
        res = self.calls.run_action(self.gripper_action, goal, "gripper_command")
        return res.position, res.stalled

    def object_positions(self) -> dict[str, Vec3]:
        res = self.calls.call(
            self.state_cli, GetEntityState.Request(names=self.object_names), "get_entity_state"
        )
        if not res.success:
            raise BackendError(f"get_entity_state: {res.message}")
        return {s.name: (s.pose.position.x, s.pose.position.y, s.pose.position.z) for s in res.states}
