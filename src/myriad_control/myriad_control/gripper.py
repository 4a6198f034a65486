"""Gripper command with a force limit: reports whether the fingers reached the goal or stalled on an object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from myriad_sim.robot import Robot


@dataclass
class GripperResult:
    position: float
    effort: float
    reached_goal: bool
    stalled: bool


def command_gripper(
    robot: Robot,
    position: float,
    max_effort: float,
    dt: float,
    step: Callable[[int], None],
    timeout: float = 1.0,
    tolerance: float = 0.03,
    still_speed: float = 0.01,
    still_time: float = 0.1,
) -> GripperResult:
    """Move to `position` (0 closed .. 1 open); stalled = fingers stopped short of the goal."""
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position: expected an opening in [0, 1], got {position}")
    if not max_effort > 0:
        raise ValueError(f"max_effort: expected a positive force in newtons, got {max_effort}")
    robot.set_gripper(position, max_effort)
    still, still_needed = 0, max(1, int(still_time / dt))
    for _ in range(int(timeout / dt)):
        step(1)
        opening = robot.gripper_opening()
        if abs(opening - position) <= tolerance:
            return GripperResult(opening, max_effort, True, False)
        still = still + 1 if robot.gripper_speed() < still_speed else 0
        if still >= still_needed:
            return GripperResult(opening, max_effort, False, True)
    opening = robot.gripper_opening()
    return GripperResult(opening, max_effort, abs(opening - position) <= tolerance, True)
