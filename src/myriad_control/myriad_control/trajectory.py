"""Joint trajectory validation, interpolation and following at the physics rate (the ros2_control role, no ROS)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from myriad_interfaces.msg import ResultCode
from myriad_sim.config import finite_array, shown
from myriad_sim.robot import Robot


class TrajectoryError(ValueError):
    """A trajectory goal is invalid; the message says which field and why."""


@dataclass
class Trajectory:
    """Points in the robot's arm-joint order."""

    times: np.ndarray  # (n,)
    positions: np.ndarray  # (n, dof)
    velocities: np.ndarray | None = None  # (n, dof)

    @property
    def duration(self) -> float:
        return float(self.times[-1])


@dataclass
class FollowResult:
    error_code: int
    message: str
    max_tracking_error: float
    final_error: float
    steps: int
    contact: bool = False  # a guarded move stopped on contact (and holds where it stopped)


def duration_parts(t: float) -> tuple[int, int]:
    """(sec, nanosec) of a time from start, as a trajectory message carries it (whole nanoseconds)."""
    sec = int(t)
    return sec, int(round((t - sec) * 1e9))


def message_times(times: Iterable[float]) -> list[float]:
    """The times a controller reads back from a trajectory message: the in-process back end follows exactly what
    a back end's controller follows (the same attempt, bit for bit)."""
    return [sec + nanosec * 1e-9 for sec, nanosec in map(duration_parts, times)]


def make_trajectory(
    robot: Robot,
    joint_names: Sequence[str],
    times: Sequence[float],
    positions: Sequence[Sequence[float]] | np.ndarray,
    velocities: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> Trajectory:
    """Validate a goal and reorder it to the arm's joints; raises TrajectoryError with a clear message."""
    arm = list(robot.spec.arm_joints)
    names = list(joint_names)
    unknown = [n for n in names if n not in arm]
    if unknown:
        raise TrajectoryError(f"joint_names: unknown joints {unknown}; the arm has {arm}")
    if sorted(names) != sorted(arm):
        raise TrajectoryError(f"joint_names: expected every arm joint once {arm}, got {names}")
    if len(positions) == 0:
        raise TrajectoryError("points: the trajectory has no points")
    t = np.asarray(times, dtype=float)
    q = finite_array(positions, (len(t), len(arm)))
    if q is None:
        raise TrajectoryError(f"points: each point needs {len(arm)} finite positions, got {shown(positions)}")
    if np.any(t < 0) or np.any(np.diff(t) <= 0):
        raise TrajectoryError(
            f"points: time_from_start must be non-negative and strictly increasing, got {t.round(4).tolist()}"
        )
    order = [names.index(n) for n in arm]
    q = q[:, order]
    bad = np.argwhere((q < robot.lower - 1e-6) | (q > robot.upper + 1e-6))
    if len(bad):
        i, j = bad[0]
        raise TrajectoryError(
            f"points[{i}].positions: {arm[j]} = {q[i, j]:.4f} rad is outside its limits "
            f"[{robot.lower[j]:.4f}, {robot.upper[j]:.4f}]"
        )
    v = None
    if velocities is not None and len(velocities):
        v = finite_array(velocities, q.shape)
        if v is None:
            raise TrajectoryError(
                f"points: velocities must be finite and match the positions' shape {q.shape}, got {shown(velocities)}"
            )
        v = v[:, order]
        limits = np.asarray(robot.spec.velocity_limits) * 1.05
        over = np.argwhere(np.abs(v) > limits)
        if len(over):
            i, j = over[0]
            raise TrajectoryError(
                f"points[{i}].velocities: {arm[j]} = {v[i, j]:.3f} rad/s exceeds its limit {robot.spec.velocity_limits[j]}"
            )
    return Trajectory(t, q, v)


def samples(traj: Trajectory, t: np.ndarray) -> np.ndarray:
    """Desired positions at the times t (one row each): cubic Hermite with velocities, linear without; held
    outside the span. One vectorized pass for a whole motion, the same numbers as point by point."""
    ts, qs = traj.times, traj.positions
    t = np.asarray(t, dtype=float)
    if len(ts) == 1:
        return np.repeat(qs, len(t), axis=0)
    i = np.clip(np.searchsorted(ts, t) - 1, 0, len(ts) - 2)
    h = ts[i + 1] - ts[i]
    s = ((t - ts[i]) / h)[:, None]
    if traj.velocities is None:
        out = qs[i] + s * (qs[i + 1] - qs[i])
    else:
        v0, v1 = traj.velocities[i] * h[:, None], traj.velocities[i + 1] * h[:, None]
        # pow() as a scalar s**2 computes it (an array's **2 is s*s, a different last bit in 0.08 % of values)
        s2, s3 = np.float_power(s, 2), np.float_power(s, 3)
        h00, h10, h01, h11 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s, -2 * s3 + 3 * s2, s3 - s2
        out = h00 * qs[i] + h10 * v0 + h01 * qs[i + 1] + h11 * v1
    out[t <= ts[0]] = qs[0]  # before the first point: the caller's start point (with_start) is the first
    out[t >= ts[-1]] = qs[-1]
    return out


def with_start(traj: Trajectory, q0: np.ndarray) -> Trajectory:
    """Prepend the current state when the first point is later than t=0 (as ros2_control does)."""
    if traj.times[0] <= 0:
        return traj
    vel = None if traj.velocities is None else np.vstack([np.zeros_like(q0), traj.velocities])
    return Trajectory(np.concatenate([[0.0], traj.times]), np.vstack([q0, traj.positions]), vel)


def follow(
    robot: Robot,
    traj: Trajectory,
    dt: float,
    step: Callable[[int], None],
    path_tolerance: float = 0.25,
    goal_tolerance: float = 0.01,
    settle_time: float = 1.0,
    on_feedback: Callable[[float, float, np.ndarray], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    feedback_every: int = 120,
    max_contact_force: float = 0.0,
) -> FollowResult:
    """Track `traj` with position targets, one physics step at a time, then settle to the goal.

    max_contact_force > 0 makes it a guarded move, as an arm with a wrist force limit does: when the contact
    force pushing the gripper up exceeds it, the arm stops and holds where it is (success, `contact` set)."""
    traj = with_start(traj, robot.joint_positions())
    n = int(np.ceil(traj.duration / dt))
    targets = samples(traj, np.arange(1, n + 1) * dt)
    max_err, k = 0.0, 0
    for k in range(1, n + 1):
        if cancelled():
            return FollowResult(ResultCode.CANCELLED, "cancelled", max_err, max_err, k)
        t = k * dt
        target = targets[k - 1]
        robot.set_arm_targets(target)
        step(1)
        err = float(np.abs(robot.joint_positions() - target).max())
        max_err = max(max_err, err)
        if max_contact_force > 0 and robot.gripper_lift_force() > max_contact_force:
            robot.set_arm_targets(robot.joint_positions())
            return FollowResult(
                ResultCode.SUCCESS, f"stopped on contact at t={t:.3f}s", max_err, err, k, True
            )
        if err > path_tolerance:
            return FollowResult(
                ResultCode.PATH_TOLERANCE_VIOLATED,
                f"path tolerance {path_tolerance} rad violated at t={t:.3f}s (error {err:.3f})",
                max_err,
                err,
                k,
            )
        if on_feedback and k % feedback_every == 0:
            on_feedback(t, err, robot.joint_positions())
    goal = traj.positions[-1]
    for extra in range(int(settle_time / dt) + 1):
        err = float(np.abs(robot.joint_positions() - goal).max())
        if err <= goal_tolerance:
            return FollowResult(ResultCode.SUCCESS, "goal reached", max_err, err, k + extra)
        step(1)
    return FollowResult(
        ResultCode.GOAL_TOLERANCE_VIOLATED,
        f"goal tolerance {goal_tolerance} rad not reached (error {err:.4f})",
        max_err,
        err,
        k + extra,
    )
