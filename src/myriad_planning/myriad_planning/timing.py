"""Time parametrization of joint paths under velocity and acceleration limits (time-optimal along the path)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from myriad_control.trajectory import Trajectory
from myriad_planning.config import PlanningConfig
from myriad_sim.spec import RobotSpec


def densify(path: np.ndarray, step: float) -> np.ndarray:
    """Insert points on each straight segment so that no joint moves more than `step` between points."""
    path = np.asarray(path, float)
    out = [path[:1]]
    for a, b in zip(path[:-1], path[1:]):
        n = max(1, int(np.ceil(np.max(np.abs(b - a)) / step)))
        out.append(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
    return np.concatenate(out)


def time_parametrize(
    path: np.ndarray,
    velocity_limits: Sequence[float],
    acceleration_limits: Sequence[float],
    densify_step: float = 0.02,
    sample_period: float = 0.02,
) -> Trajectory:
    """Time-optimal trajectory along a piecewise-linear joint path, at rest at both ends, sampled every period.

    Path-velocity profile by a forward and a backward pass (TOPP on the densified polyline): on each segment the
    joint velocity and acceleration limits bound the path speed and acceleration; at each vertex the turn of
    direction bounds the speed so that the velocity turns within the accelerations over a sample period. Constant path acceleration
    per segment, so positions stay on the segments.
    """
    path = np.asarray(path, float)
    keep = np.ones(len(path), bool)
    keep[1:] = np.any(np.abs(np.diff(path, axis=0)) > 1e-9, axis=1)
    path = path[keep]
    if len(path) < 2:
        return Trajectory(np.zeros(1), path[:1].copy(), np.zeros_like(path[:1]))
    vlim, alim = np.asarray(velocity_limits, float), np.asarray(acceleration_limits, float)
    q = densify(path, densify_step)
    if len(q) == 2:
        # One segment has no vertex to accelerate and brake at: split it (time-optimal then, 2 sqrt(L / a)).
        q = np.array([q[0], (q[0] + q[1]) / 2, q[1]])
    steps = np.diff(q, axis=0)
    lengths = np.linalg.norm(steps, axis=1)
    d = steps / lengths[:, None]
    tiny = 1e-12
    seg_v = np.min(vlim / np.maximum(np.abs(d), tiny), axis=1)
    seg_a = np.min(alim / np.maximum(np.abs(d), tiny), axis=1)
    vmax = np.zeros(len(q))
    vmax[1:-1] = np.minimum(seg_v[:-1], seg_v[1:])
    turn = np.abs(d[1:] - d[:-1])
    # The controller turns the velocity within about one sample period.
    bend = np.min(alim * sample_period / np.maximum(turn, tiny), axis=1)
    vmax[1:-1] = np.minimum(vmax[1:-1], bend)
    v = vmax.copy()
    for k in range(len(lengths)):  # forward: reachable from rest at the start
        v[k + 1] = min(v[k + 1], np.sqrt(v[k] ** 2 + 2 * seg_a[k] * lengths[k]))
    for k in range(len(lengths) - 1, -1, -1):  # backward: can stop at the end
        v[k] = min(v[k], np.sqrt(v[k + 1] ** 2 + 2 * seg_a[k] * lengths[k]))
    dt = 2 * lengths / np.maximum(v[:-1] + v[1:], tiny)
    t = np.concatenate([[0.0], np.cumsum(dt)])
    times = np.append(np.arange(0.0, t[-1], sample_period), t[-1])
    if len(times) > 2 and times[-1] - times[-2] < 1e-6:
        times = np.delete(times, -2)
    k = np.clip(np.searchsorted(t, times, side="right") - 1, 0, len(lengths) - 1)
    tau = times - t[k]
    acc = (v[k + 1] ** 2 - v[k] ** 2) / (2 * lengths[k])
    s = np.minimum(v[k] * tau + 0.5 * acc * tau**2, lengths[k])
    positions = q[k] + d[k] * s[:, None]
    velocities = d[k] * (v[k] + acc * tau)[:, None]
    positions[0], positions[-1] = path[0], path[-1]
    velocities[0], velocities[-1] = 0.0, 0.0
    return Trajectory(times, positions, velocities)


def robot_trajectory(path: np.ndarray, robot: RobotSpec, config: PlanningConfig) -> Trajectory:
    """time_parametrize with the robot's limits scaled and the densify/sample settings of the planning config."""
    return time_parametrize(
        path,
        np.asarray(robot.velocity_limits) * config.velocity_scaling,
        np.asarray(robot.acceleration_limits) * config.acceleration_scaling,
        config.densify,
        config.sample_period,
    )
