"""One grasp attempt as a script over a backend protocol, so the same attempt runs through ROS or in-process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from myriad_grasping.sampling import Grasp, GraspParams, View, attempt_rng, label, sample_grasp

Vec3 = tuple[float, float, float]


@dataclass
class MoveResult:
    ok: bool
    message: str = ""
    planning_time: float = 0.0
    path_length: float = 0.0
    planner: str = ""
    contact: bool = False  # a guarded move stopped on contact
    refused: bool = False  # not ok because it could not be planned (it never started)


# What became of an attempt. Without a physical grasp: refused_before_descent (the reach above the grasp or the
# descent could not be planned), collided_on_reach (the reach hit something). With one: lifted (the label's
# success), missed (the fingers closed on nothing), slipped_during_lift (held something, lifted nothing),
# lift_failed (the lift could not be planned or executed).
OUTCOMES = (
    "lifted",
    "missed",
    "slipped_during_lift",
    "lift_failed",
    "refused_before_descent",
    "collided_on_reach",
)
MISSED_OPENING = 0.05  # fingers closed to within 5 % of their range of closed: nothing (< ~7 mm) between them


class GraspBackend(Protocol):
    """What an attempt needs from a back end (a ROS one, or library calls in one process)."""

    def reset(self, seed: int, object_count: int) -> list[tuple[str, str, Vec3]]: ...
    def capture(self) -> Any: ...
    def view(self, images: Any) -> View: ...
    def move(
        self,
        kind: str,
        position: Vec3,
        orientation: tuple[float, float, float, float],
        seed: int,
        max_contact_force: float = 0.0,
    ) -> MoveResult: ...
    def gripper(self, opening: float, force: float) -> tuple[float, bool]: ...
    def object_positions(self) -> dict[str, Vec3]: ...
    def trajectory(self) -> Any: ...  # the attempt's myriad_sim.recording.Recording, or None


@dataclass
class Attempt:
    seed: int
    params: GraspParams
    grasp: Grasp
    target: str
    objects: list[tuple[str, str, Vec3]]
    success: bool | None  # grasped and lifted; None when no grasp was executed
    grasp_executed: bool
    lifted_object: str
    lift_height: float
    outcome: str
    pre_images: Any
    post_images: Any
    timings: dict[str, float] = field(default_factory=dict)
    moves: dict[str, dict[str, Any]] = field(default_factory=dict)
    trajectory: Any = None  # what the arm did (myriad_sim.recording.Recording), when the back end records it


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
) -> tuple[str, bool, dict[str, dict[str, Any]]]:
    """Open, reach above the grasp (collision-free), descend to the grasp or until contact (a guarded move that may
    touch the tray and objects), close, lift. Returns (outcome so far, grasp executed, each motion's record): the
    outcome is "closed_empty" or "closed_on_object" after a lift, for `classify` to finish with the label."""
    orientation = top_down(grasp.yaw)
    moves: dict[str, dict[str, Any]] = {}
    guard = params.contact_force
    backend.gripper(1.0, params.gripper_force)
    steps = (
        ("reach", "pose", (grasp.x, grasp.y, grasp.z + params.approach_height), guard),
        ("descend", "cartesian_contact", (grasp.x, grasp.y, grasp.z), guard),
        ("close", None, None, 0.0),
        ("lift", "cartesian_contact", (grasp.x, grasp.y, grasp.z + params.lift_height), 0.0),
    )
    closed = "closed_on_object"
    for k, (name, kind, position, force) in enumerate(steps):
        if kind is None:
            opening, _ = backend.gripper(0.0, params.gripper_force)
            closed = "closed_empty" if opening <= MISSED_OPENING else closed
            moves[name] = {"opening": round(float(opening), 4)}
        else:
            result = backend.move(kind, position, orientation, motion_seed(seed, k), force)
            moves[name] = {
                "ok": result.ok,
                "message": result.message,
                "planning_time": round(result.planning_time, 4),
                "path_length": round(result.path_length, 4),
                "planner": result.planner,
                "contact": result.contact,
            }
            if name == "reach" and (result.contact or not result.ok):
                return ("refused_before_descent" if result.refused else "collided_on_reach"), False, moves
            if name == "descend" and result.refused:
                return "refused_before_descent", False, moves
            if name == "lift" and not result.ok:
                return "lift_failed", True, moves
        lap(name)
    return closed, True, moves


def classify(outcome: str, executed: bool, success: bool) -> tuple[str, bool | None]:
    """The attempt's outcome (one of OUTCOMES) and label: success only for executed grasps, else None."""
    if not executed:
        return outcome, None
    if outcome in ("closed_empty", "closed_on_object"):
        outcome = "lifted" if success else "missed" if outcome == "closed_empty" else "slipped_during_lift"
    return outcome, success


def run_attempt(
    backend: GraspBackend,
    params: GraspParams,
    seed: int,
    region_x: tuple[float, float],
    region_y: tuple[float, float],
    models: Callable[[str], Any] | None = None,
) -> Attempt:
    """Reset, look, sample a grasp from what the camera sees, execute it, label, look again. `models(version)`
    gives the loaded grasp model of the `learned` strategy (myriad_learning.registry.ModelRegistry.load)."""
    model = None
    if params.strategy == "learned":
        if models is None:
            raise ValueError("strategy 'learned': this back end has no access to stored models")
        model = models(params.model_version)
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
        attempt_rng(seed), params, [n for n, _, _ in objects], region_x, region_y, backend.view(pre), model
    )
    outcome, executed, moves = execute_grasp(backend, grasp, params, seed, lap)
    after = backend.object_positions()
    success, lifted, rise = label({n: p for n, _, p in objects}, after, params.success_height)
    outcome, labelled = classify(outcome, executed, success)
    post = backend.capture()
    lap("capture_post")
    return Attempt(
        seed, params, grasp, target, objects, labelled, executed, lifted, rise, outcome, pre, post, timings, moves,
        backend.trajectory(),
    )  # fmt: skip
