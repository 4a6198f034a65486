"""The planner node (the MoveIt move_group role): `plan` service and `plan_and_execute` action."""

from __future__ import annotations

import threading
import traceback
from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Pose
from rclpy.action import ActionClient, ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import MarkerArray

from myriad_control.trajectory import Trajectory, duration_parts
from myriad_interfaces.action import ExecuteTrajectory, PlanAndExecute
from myriad_interfaces.msg import ResultCode
from myriad_interfaces.srv import CaptureImages, GetEntityState, PlanMotion
from myriad_planning.config import load_config
from myriad_planning.planner import Planner, PlanResult
from myriad_planning.scene import ObjectState, Scene, camera_pose
from myriad_planning.timing import densify, robot_trajectory
from myriad_runtime import workspace_path
from myriad_runtime.calls import CallFailed, action_client, call_action, call_service, end_goal, in_thread
from myriad_runtime.node import BackendNode
from myriad_sim import viz
from myriad_sim.frames import frame_prefix
from myriad_sim.image_codec import imgmsg_to_cv2
from myriad_sim.spec import load_world

if TYPE_CHECKING:
    from rclpy.action.server import ServerGoalHandle

SERVICE_TIMEOUT = 5.0  # s, for the sim server's services and the controller accepting a goal


def trajectory_msg(names: tuple[str, ...], traj: Trajectory) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    for t, q, v in zip(traj.times, traj.positions, traj.velocities):
        sec, nanosec = duration_parts(t)
        msg.points.append(
            JointTrajectoryPoint(
                positions=q.tolist(),
                velocities=v.tolist(),
                time_from_start=Duration(sec=sec, nanosec=nanosec),
            )
        )
    return msg


def pose_of(msg: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Position and quaternion of a Pose message, the quaternion normalised when it can be (the planner rejects
    a zero or non-finite one)."""
    o = msg.orientation
    q = np.array([o.x, o.y, o.z, o.w])
    n = float(np.linalg.norm(q))
    return np.array([msg.position.x, msg.position.y, msg.position.z]), (q / n if n > 1e-6 else q)


class PlannerNode(BackendNode):
    """Plans on a private PyBullet copy of the world, synced from the sim server before every request."""

    def __init__(self, **kwargs) -> None:
        super().__init__("planner", **kwargs)
        self.declare_parameter("world_file", "worlds/tray.yaml")
        self.declare_parameter("planning_config", "config/planning.yaml")
        self.declare_parameter("seed", 0)
        self.prefix = self.declare_parameter("frame_prefix", frame_prefix(self.get_namespace())).value
        visualization = self.declare_parameter("visualization", True).value
        self.markers_pub = (
            self.create_publisher(MarkerArray, "markers", viz.LATCHED) if visualization else None
        )
        self.spec = load_world(workspace_path(self.get_parameter("world_file").value))
        self.config = load_config(workspace_path(self.get_parameter("planning_config").value))
        self.scene = Scene(self.spec, self.config)
        self.planner = Planner(self.scene, self.config)
        self._lock = threading.Lock()  # one request at a time on the planning scene
        self._seeds = np.random.default_rng(self.get_parameter("seed").value)  # for requests without a seed
        group = ReentrantCallbackGroup()
        # Only the clients this planner uses: every client of a service wakes the executor for every answer the
        # service sends to anyone (and an action client for every status and feedback message of its server).
        self.state_client = self.create_client(GetEntityState, "get_entity_state", callback_group=group)
        self.capture_client = (
            self.create_client(CaptureImages, "capture_images", callback_group=group)
            if self.config.obstacle_source == "depth"
            else None
        )
        self._execute_client: ActionClient | None = None  # made at the first plan_and_execute
        self._client_lock = threading.Lock()
        self._group = group
        self.create_service(PlanMotion, "plan", self._plan_service, callback_group=group)
        self.action_server = ActionServer(
            self,
            PlanAndExecute,
            "plan_and_execute",
            self._plan_and_execute,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=group,
        )
        self.get_logger().info(
            f"planner ready: {self.config.default_planner} by default, obstacles from {self.config.obstacle_source}"
        )

    # -- inputs from the sim -----------------------------------------------------------------------------------------

    def sync_scene(self, start: list[float]) -> np.ndarray:
        """Sync the planning scene with the sim and return the start state: `start` if given, else the arm's
        positions now. One get_entity_state answer holds the objects and the joints of the same sim instant, in
        order with the sim's other requests (a joint_states message could still be from before the last reset);
        with obstacles from depth, the scene is voxels from a fresh depth image (robot at the start)."""
        depth = self.config.obstacle_source == "depth"
        res = None if depth and start else self._entity_states()
        q = np.array(start) if start else self._arm_positions(res.joint_state)
        if depth:
            images = call_service(self.capture_client, CaptureImages.Request(), SERVICE_TIMEOUT, check=True)
            K = np.array(images.camera_info.k, float).reshape(3, 3)
            self.scene.sync([])
            self.scene.update_from_depth(imgmsg_to_cv2(images.depth), K, camera_pose(self.spec.camera), q)
            return q
        self.scene.sync(
            ObjectState(
                s.name,
                s.source,
                (s.pose.position.x, s.pose.position.y, s.pose.position.z),
                (s.pose.orientation.x, s.pose.orientation.y, s.pose.orientation.z, s.pose.orientation.w),
            )
            for s in res.states
        )
        return q

    def _entity_states(self) -> GetEntityState.Response:
        return call_service(self.state_client, GetEntityState.Request(), SERVICE_TIMEOUT, check=True)

    def _arm_positions(self, msg: JointState) -> np.ndarray:
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [n for n in self.spec.robot.arm_joints if n not in index]
        if missing:
            raise CallFailed(self.state_client.service_name, f"no joint positions for {missing}")
        return np.array([msg.position[index[n]] for n in self.spec.robot.arm_joints])

    # -- planning ----------------------------------------------------------------------------------------------------

    def plan(self, request: PlanMotion.Request | PlanAndExecute.Goal) -> tuple[PlanResult, JointTrajectory]:
        """Plan a PlanMotion / PlanAndExecute request on the freshly synced scene."""
        posed = request.goal_type in ("pose", "cartesian", "cartesian_contact")
        pose = pose_of(request.pose_goal) if posed else None
        with self._lock:
            seed = request.seed if request.seed >= 0 else int(self._seeds.integers(2**31))
            try:
                start = self.sync_scene(list(getattr(request, "start", [])))
            except CallFailed as exc:
                return PlanResult(ResultCode.PLANNING_FAILED, str(exc)), JointTrajectory()
            result = self.planner.plan(
                request.goal_type,
                start,
                list(request.joint_goal),
                pose,
                request.planner,
                request.time_limit,
                seed,
            )
            if result.success and self.markers_pub is not None:
                tool = [self.scene.kinematics.fk(q)[0] for q in densify(result.path, 0.1)]
                self.markers_pub.publish(viz.path_marker(tool, self.prefix, Time()))
        if not result.success:
            self.get_logger().info(f"{request.goal_type} plan failed ({result.code}): {result.message}")
            return result, JointTrajectory()
        try:
            traj = robot_trajectory(result.path, self.spec.robot, self.config)
        except RuntimeError as exc:
            return PlanResult(ResultCode.PLANNING_FAILED, str(exc), planner=result.planner), JointTrajectory()
        return result, trajectory_msg(self.spec.robot.arm_joints, traj)

    async def _plan_service(self, req: PlanMotion.Request, res: PlanMotion.Response) -> PlanMotion.Response:
        try:
            result, res.trajectory = await in_thread(self, self.plan, req)
        except Exception as exc:  # fail the request, not the process (an action server does so itself)
            self.get_logger().error(f"plan failed: {traceback.format_exc()}")
            result = PlanResult(ResultCode.PLANNING_FAILED, f"internal error: {exc!r}")
        res.error_code, res.message, res.planner = result.code, result.message, result.planner
        res.planning_time, res.path_length = result.planning_time, result.path_length
        return res

    async def _plan_and_execute(self, goal_handle) -> PlanAndExecute.Result:
        out = await in_thread(self, self.plan_and_execute, goal_handle)
        end_goal(goal_handle, out.error_code == ResultCode.SUCCESS)
        return out

    def plan_and_execute(self, goal_handle: ServerGoalHandle) -> PlanAndExecute.Result:
        """Plan, then execute on success (on a thread of its own: it waits on the sim and the controller)."""
        out = PlanAndExecute.Result()
        goal_handle.publish_feedback(PlanAndExecute.Feedback(phase="planning"))
        result, traj = self.plan(goal_handle.request)
        out.error_code, out.message = result.code, result.message
        out.planning_time, out.path_length = result.planning_time, result.path_length
        if result.success:
            goal_handle.publish_feedback(PlanAndExecute.Feedback(phase="executing"))
            out.error_code, out.message, out.execution_time = self.execute(traj, goal_handle)
        return out

    def execute_client(self) -> ActionClient:
        """The controller's action client, made on first use (Myriad's own back ends never plan_and_execute)."""
        with self._client_lock:
            if self._execute_client is None:
                self._execute_client = action_client(
                    self, ExecuteTrajectory, "execute_trajectory", callback_group=self._group
                )
            return self._execute_client

    def execute(self, traj: JointTrajectory, goal_handle: ServerGoalHandle) -> tuple[int, str, float]:
        """Run a trajectory on the controller; (code, message, execution time from the plan)."""
        if not traj.points:
            return ResultCode.SUCCESS, "already at the goal", 0.0
        end = traj.points[-1].time_from_start
        duration = end.sec + end.nanosec * 1e-9
        try:
            res = call_action(
                self.execute_client(),
                ExecuteTrajectory.Goal(trajectory=traj),
                SERVICE_TIMEOUT,
                result_timeout=duration + 2 * SERVICE_TIMEOUT,
                cancelled=lambda: goal_handle.is_cancel_requested,
            )
        except CallFailed as exc:
            return ResultCode.EXECUTION_FAILED, str(exc), 0.0
        if res.error_code != ResultCode.SUCCESS:
            return (
                ResultCode.EXECUTION_FAILED,
                f"execution failed ({res.error_code}): {res.message}",
                duration,
            )
        return ResultCode.SUCCESS, "", duration

    def close(self) -> None:
        self.scene.world.close()


def main(args: list[str] | None = None) -> None:
    from myriad_runtime.container import run_nodes

    run_nodes([PlannerNode], args)


if __name__ == "__main__":
    main()
