"""Time parametrization of joint paths under velocity and acceleration limits (TOPP-RA)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import toppra
import toppra.algorithm
import toppra.constraint

from myriad_planning.config import PlanningConfig
from myriad_sim.spec import RobotSpec

logging.getLogger("toppra").setLevel(logging.WARNING)


@dataclass
class Trajectory:
    times: np.ndarray  # (M,) seconds from start
    positions: np.ndarray  # (M, dof)
    velocities: np.ndarray  # (M, dof)

    @property
    def duration(self) -> float:
        return float(self.times[-1])


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

    The path is densified first so that the fitted spline stays on the segments (no cut corners).
    """
    path = np.asarray(path, float)
    keep = np.ones(len(path), bool)
    keep[1:] = np.any(np.abs(np.diff(path, axis=0)) > 1e-9, axis=1)
    path = path[keep]
    if len(path) < 2:
        return Trajectory(np.zeros(1), path[:1].copy(), np.zeros_like(path[:1]))
    dense = densify(path, densify_step)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    spline = toppra.SplineInterpolator(s / s[-1], dense)
    vlim, alim = np.asarray(velocity_limits, float), np.asarray(acceleration_limits, float)
    constraints = [
        toppra.constraint.JointVelocityConstraint(np.column_stack([-vlim, vlim])),
        toppra.constraint.JointAccelerationConstraint(
            np.column_stack([-alim, alim]),
            discretization_scheme=toppra.constraint.DiscretizationType.Interpolation,
        ),
    ]
    algo = toppra.algorithm.TOPPRA(constraints, spline, parametrizer="ParametrizeConstAccel")
    traj = algo.compute_trajectory(0.0, 0.0)
    if traj is None:
        raise RuntimeError(f"time parametrization failed for a path of {len(path)} waypoints")
    duration = float(traj.duration)
    times = np.append(np.arange(0.0, duration, sample_period), duration)
    if len(times) > 2 and times[-1] - times[-2] < 1e-6:
        times = np.delete(times, -2)
    positions, velocities = np.asarray(traj(times)), np.asarray(traj(times, 1))
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
