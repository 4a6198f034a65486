"""One grasp attempt as a script over a backend protocol, so the same attempt runs through ROS or in-process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from myriad_grasping.sampling import Grasp, GraspParams, attempt_rng, label, sample_grasp

Vec3 = tuple[float, float, float]


@dataclass
class MoveResult:
    ok: bool
    message: str = ""
    planning_time: float = 0.0
    path_length: float = 0.0
    planner: str = ""


class GraspBackend(Protocol):
    """What an attempt needs from a back end (a ROS one, or library calls in one process)."""

    def reset(self, seed: int, object_count: int) -> list[tuple[str, str, Vec3]]: ...
    def capture(self) -> Any: ...
    def surface_height(self, images: Any, x: float, y: float) -> float: ...
    def move(
        self, kind: str, position: Vec3, orientation: tuple[float, float, float, float], seed: int
    ) -> MoveResult: ...
    def gripper(self, opening: float, force: float) -> tuple[float, bool]: ...
    def object_positions(self) -> dict[str, Vec3]: ...


@dataclass
class Attempt:
    seed: int
    params: GraspParams
    grasp: Grasp
    target: str
    objects: list[tuple[str, str, Vec3]]
    success: bool
    lifted_object: str
    lift_height: float
    outcome: str
    pre_images: Any
    post_images: Any
    timings: dict[str, float] = field(default_factory=dict)
    moves: dict[str, dict[str, Any]] = field(default_factory=dict)


def top_down(yaw: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of the gripper pointing down, turned by yaw (pybullet Euler [0, pi, yaw])."""
    return (-math.sin(yaw / 2), math.cos(yaw / 2), 0.0, 0.0)


def motion_seed(seed: int, k: int) -> int:
    """The planner seed of motion k of an attempt (fits the int64 seed field)."""
    return (seed * 8 + k) % (2**62)


def execute_grasp(
    backend: GraspBackend,
    grasp: Grasp,
    params: GraspParams,
    seed: int,
    lap: Callable[[str], None] = lambda _n: None,
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Open, reach above the grasp, descend, close, lift. Returns the outcome and each motion's record."""
    orientation = top_down(grasp.yaw)
    moves: dict[str, dict[str, Any]] = {}
    backend.gripper(1.0, params.gripper_force)
    steps = (
        ("reach", "pose", (grasp.x, grasp.y, grasp.z + params.approach_height)),
        ("descend", "cartesian", (grasp.x, grasp.y, grasp.z)),
        ("close", None, None),
        ("lift", "cartesian", (grasp.x, grasp.y, grasp.z + params.lift_height)),
    )
    for k, (name, kind, position) in enumerate(steps):
        if kind is None:
            backend.gripper(0.0, params.gripper_force)
        else:
            result = backend.move(kind, position, orientation, motion_seed(seed, k))
            moves[name] = {
                "ok": result.ok,
                "message": result.message,
                "planning_time": round(result.planning_time, 4),
                "path_length": round(result.path_length, 4),
                "planner": result.planner,
            }
            if not result.ok:
                return f"{name}_failed", moves
        lap(name)
    return "lifted", moves


def run_attempt(
    backend: GraspBackend,
    params: GraspParams,
    seed: int,
    region_x: tuple[float, float],
    region_y: tuple[float, float],
) -> Attempt:
    """Reset, look, sample a grasp, execute it, label, look again."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 4)
        clock = now

    objects = backend.reset(seed, params.object_count)
    lap("reset")
    pre = backend.capture()
    lap("capture_pre")
    grasp, target = sample_grasp(
        attempt_rng(seed), params, [(n, p) for n, _, p in objects], region_x, region_y
    )
    outcome, moves = execute_grasp(backend, grasp, params, seed, lap)
    after = backend.object_positions()
    success, lifted, rise = label({n: p for n, _, p in objects}, after, params.success_height)
    post = backend.capture()
    lap("capture_post")
    return Attempt(
        seed, params, grasp, target, objects, success, lifted, rise, outcome, pre, post, timings, moves
    )
