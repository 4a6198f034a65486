"""ROS 2 action servers of the controllers, loaded into the sim server's process (as gazebo_ros2_control does)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from myriad_control.gripper import command_gripper
from myriad_control.trajectory import TrajectoryError, follow, make_trajectory
from myriad_interfaces.action import ExecuteTrajectory, GripperCommand
from myriad_interfaces.msg import ResultCode
from myriad_runtime.calls import end_goal

if TYPE_CHECKING:
    import numpy as np


class Controllers:
    """`execute_trajectory` and `gripper_command` on a sim server node; they run on its physics thread (the
    callbacks await it, holding no executor thread, so cancel requests are served meanwhile)."""

    def __init__(self, node: Node, sim) -> None:
        self.node, self.sim = node, sim
        node.declare_parameter("path_tolerance", 0.25)
        node.declare_parameter("goal_tolerance", 0.01)
        group = ReentrantCallbackGroup()
        accept = lambda _goal: GoalResponse.ACCEPT  # noqa: E731
        cancel = lambda _goal: CancelResponse.ACCEPT  # noqa: E731
        self.trajectory_server = ActionServer(
            node, ExecuteTrajectory, "execute_trajectory", self._execute,
            goal_callback=accept, cancel_callback=cancel, callback_group=group,
        )  # fmt: skip
        self.gripper_server = ActionServer(
            node,
            GripperCommand,
            "gripper_command",
            self._gripper,
            cancel_callback=cancel,
            callback_group=group,
        )

    async def _execute(self, goal_handle) -> ExecuteTrajectory.Result:
        goal = goal_handle.request
        result = ExecuteTrajectory.Result()
        sim, robot = self.sim, self.sim.world.robot
        points = goal.trajectory.points
        try:
            traj = make_trajectory(
                robot,
                goal.trajectory.joint_names,
                [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in points],
                [list(p.positions) for p in points],
                [list(p.velocities) for p in points]
                if points and all(len(p.velocities) for p in points)
                else None,
            )
        except TrajectoryError as exc:
            self.node.get_logger().warning(f"rejected trajectory: {exc}")
            goal_handle.abort()
            result.error_code, result.message = ResultCode.INVALID_GOAL, str(exc)
            return result
        path_tol = goal.path_tolerance or self.node.get_parameter("path_tolerance").value
        goal_tol = goal.goal_tolerance or self.node.get_parameter("goal_tolerance").value

        def feedback(t: float, err: float, q: np.ndarray) -> None:
            fb = ExecuteTrajectory.Feedback(time_from_start=t, tracking_error=err, positions=list(q))
            goal_handle.publish_feedback(fb)

        out = await sim.physics_async(lambda: follow(
            robot, traj, sim.world.spec.timestep, sim.advance, path_tol, goal_tol,
            on_feedback=feedback, cancelled=lambda: goal_handle.is_cancel_requested or sim.stopping,
            max_contact_force=goal.max_contact_force,
        ))  # fmt: skip
        result.error_code, result.message = out.error_code, out.message
        result.stopped_on_contact = out.contact
        result.max_tracking_error, result.final_error = out.max_tracking_error, out.final_error
        end_goal(goal_handle, out.error_code == ResultCode.SUCCESS)
        return result

    async def _gripper(self, goal_handle) -> GripperCommand.Result:
        goal = goal_handle.request
        sim = self.sim
        try:
            out = await sim.physics_async(
                command_gripper,
                sim.world.robot,
                goal.position,
                goal.max_effort,
                sim.world.spec.timestep,
                sim.advance,
            )
        except ValueError as exc:
            self.node.get_logger().warning(f"rejected gripper goal: {exc}")
            goal_handle.abort()
            return GripperCommand.Result()
        goal_handle.succeed()
        return GripperCommand.Result(
            position=out.position, effort=out.effort, reached_goal=out.reached_goal, stalled=out.stalled
        )
