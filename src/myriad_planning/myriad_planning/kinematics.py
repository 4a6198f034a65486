"""Forward and inverse kinematics of the gripper centre, on the planning copy of the robot."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import pybullet as pb

from myriad_sim.robot import Robot

Pose = tuple[np.ndarray, np.ndarray]  # position (3,), quaternion x, y, z, w (4,)
# m and rad: an IK solution this close to the pose is not refined further (the tolerances are ~20x coarser).
CONVERGED = 1e-4
# PyBullet's iterations per IK call; `_solve_from` calls again from the last answer until CONVERGED. Until
# 2026-12-03: 100, and every call's null space pulled toward the first seed, which left 1-2 mm at the tool centre
# that no further call removed (CONVERGED never held: 4 calls per pose). Pulled toward the last answer instead, with
# 20: 100 grasp poses over the tray, 3.4 calls and 2.2 ms per pose (7.0 ms before), worst error 0.10 mm (1.75 mm).
IK_ITERATIONS = 20


def orientation_error(q1: Sequence[float], q2: Sequence[float]) -> float:
    """Angle (rad) of the rotation between two unit quaternions."""
    d = abs(float(np.dot(np.asarray(q1, float), np.asarray(q2, float))))
    return 2.0 * float(np.arccos(min(1.0, d)))


class Kinematics:
    """FK/IK of the tool centre (ee_link + tool_offset). Moves the planning robot's joints: not for the sim."""

    def __init__(self, robot: Robot, position_tolerance: float = 0.002, orientation_tolerance: float = 0.02):
        self.robot, self.client, self.body = robot, robot.client, robot.body
        self.position_tolerance, self.orientation_tolerance = position_tolerance, orientation_tolerance
        self.home = np.array(robot.spec.home)
        movable = [
            j
            for j in range(pb.getNumJoints(self.body, physicsClientId=self.client))
            if pb.getJointInfo(self.body, j, physicsClientId=self.client)[2] != pb.JOINT_FIXED
        ]
        if movable[: len(robot.arm)] != robot.arm:
            raise ValueError("the arm joints must be the first movable joints of the robot model for IK")
        self._dofs = len(movable)
        self._tool_inv = pb.invertTransform(robot.spec.tool_offset, (0, 0, 0, 1))

    def set_joints(self, q: Sequence[float]) -> None:
        pb.resetJointStatesMultiDof(
            self.body, self.robot.arm, [[float(v)] for v in q], physicsClientId=self.client
        )

    def fk(self, q: Sequence[float]) -> Pose:
        """Pose of the gripper centre at arm configuration q."""
        self.set_joints(q)
        return self.robot.tool_pose()

    def pose_error(
        self, q: Sequence[float], position: Sequence[float], orientation: Sequence[float]
    ) -> tuple[float, float]:
        pos, orn = self.fk(q)
        return float(np.linalg.norm(pos - np.asarray(position))), orientation_error(orn, orientation)

    def _solve_from(
        self, seed: np.ndarray, pose: tuple[Sequence[float], Sequence[float]], ee_pos, ee_orn, iterations: int
    ) -> tuple[np.ndarray, float, float]:
        """Up to `iterations` IK calls, each from (and its null space toward) the last solution, until within
        CONVERGED of the gripper-centre `pose`; returns the solution and its position and orientation errors."""
        lo, hi = self.robot.lower, self.robot.upper
        pad = self._dofs - len(seed)
        q, dp, da = seed, math.inf, math.inf
        for _ in range(iterations):
            self.set_joints(q)
            sol = pb.calculateInverseKinematics(
                self.body,
                self.robot.ee,
                ee_pos,
                ee_orn,
                lowerLimits=list(lo) + [-10.0] * pad,
                upperLimits=list(hi) + [10.0] * pad,
                jointRanges=list(hi - lo) + [20.0] * pad,
                restPoses=list(q) + [0.0] * pad,
                maxNumIterations=IK_ITERATIONS,
                residualThreshold=1e-6,
                physicsClientId=self.client,
            )
            q = np.clip(np.array(sol[: len(seed)]), lo, hi)
            dp, da = self.pose_error(q, *pose)
            if dp < CONVERGED and da < CONVERGED:
                break
        return q, dp, da

    def solutions(
        self,
        position: Sequence[float],
        orientation: Sequence[float],
        seed: Sequence[float] | None = None,
        restarts: int = 20,
        rng: np.random.Generator | None = None,
    ) -> Iterator[np.ndarray]:
        """Joint configurations placing the gripper centre at the pose within limits and tolerances.

        Seeds tried in order: `seed`, home, then random configurations from `rng` (`restarts` seeds in all).
        """
        rng = rng or np.random.default_rng(0)
        ee_pos, ee_orn = pb.multiplyTransforms(position, orientation, *self._tool_inv)
        seeds = ([np.asarray(seed, float)] if seed is not None else []) + [self.home]
        seeds += [
            rng.uniform(self.robot.lower, self.robot.upper) for _ in range(max(0, restarts - len(seeds)))
        ]
        for s in seeds:
            q0 = np.clip(s, self.robot.lower, self.robot.upper)
            q, dp, da = self._solve_from(q0, (position, orientation), ee_pos, ee_orn, iterations=4)
            if dp < self.position_tolerance and da < self.orientation_tolerance:
                yield q

    def ik(self, position: Sequence[float], orientation: Sequence[float], **kwargs) -> np.ndarray | None:
        """First solution of `solutions` (same arguments), or None when the pose is unreachable."""
        return next(self.solutions(position, orientation, **kwargs), None)
