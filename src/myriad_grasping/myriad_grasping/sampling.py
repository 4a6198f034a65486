"""Grasp-attempt parameters and seeded grasp sampling (pure logic, no ROS)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import numpy as np

from myriad_sim.config import is_int

STRATEGIES = ("uniform", "object", "learned")
# Closed ranges of the numeric fields (metres, newtons); every value must also be finite.
_RANGES: dict[str, tuple[float, float]] = {
    "position_noise": (0.0, 0.5),
    "yaw_noise": (0.0, math.pi),
    "max_grasp_width": (0.005, 0.2),
    "approach_height": (0.01, 1.0),
    "lift_height": (0.01, 1.0),
    "success_height": (0.001, 1.0),
    "gripper_force": (0.1, 200.0),
    "grasp_depth": (0.0, 0.2),
    "min_grasp_z": (0.001, 1.0),
    "contact_force": (0.1, 300.0),
}


@dataclass(frozen=True)
class GraspParams:
    """Everything one attempt depends on besides its seed. Stored with every attempt."""

    object_count: int = 5
    strategy: str = "object"
    position_noise: float = 0.01  # m, standard deviation of the `object` strategy's aim
    yaw_noise: float = 0.05  # rad, standard deviation of the `object` strategy's yaw
    # m: `object` aims at objects whose seen narrow side is at most this wide (the open fingers' tips are ~10 cm
    # apart and their bases slant inwards), when the camera sees any.
    max_grasp_width: float = 0.08
    approach_height: float = 0.15
    # m above the grasp: twice success_height. 0.20 instead of 0.30 (2026-12-02, campaign seed 1, paired on the same
    # 400 seeds per strategy, bench/bench_grasp.py): 3 % fewer physics steps per attempt, the same labels but for
    # 10 of 800 seeds (`object` 352/400 vs 349/400: 3 gained, 0 lost; `uniform` 128/400 vs 127/400: 4 gained, 3 lost)
    lift_height: float = 0.20
    success_height: float = 0.10
    gripper_force: float = 20.0  # N per finger
    grasp_depth: float = 0.04
    # Lowest gripper-centre height: the open fingertips reach 1.7 cm below it, closing ones 3.2 cm (sweeping the
    # tray floor, z 0.006, where nothing is between them), so that objects lying flat are held by the pads.
    min_grasp_z: float = 0.03
    # N: the descent (a guarded move) stops when the contact force pushing the gripper up exceeds this.
    contact_force: float = 20.0
    planner: str = ""
    # The stored grasp model (`myriad train` prints its version) the `learned` strategy scores grasps with.
    model_version: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "params") -> GraspParams:
        """Build from a dict (YAML/JSON), ignoring the `seed`; errors name the field and the expected value."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known) - {"seed"})
        if unknown:
            raise ValueError(f"{where}: unknown fields {unknown}; known: {sorted(known)}")
        values = {k: v for k, v in data.items() if k in known}
        for k, v in values.items():
            values[k] = _check(f"{where}.{k}", k, v)
        if values.get("strategy") == "learned" and not values.get("model_version"):
            raise ValueError(f"{where}.model_version: strategy 'learned' needs a model version like v1 (myriad "
                             "train prints it)")  # fmt: skip
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(where: str, name: str, v: Any) -> Any:
    """The validated value of field `name` (integers accepted for floats); ValueError naming `where` otherwise."""
    if name == "object_count":
        if not is_int(v) or not 1 <= v <= 20:
            raise ValueError(f"{where}: expected an integer 1..20, got {v!r}")
        return v
    if name == "strategy":
        if v not in STRATEGIES:
            raise ValueError(f"{where}: expected one of {STRATEGIES}, got {v!r}")
        return v
    if name == "planner":
        from myriad_planning.config import PLANNERS

        if not isinstance(v, str) or v not in ("", *PLANNERS):
            raise ValueError(f"{where}: expected '' (the configured default) or one of {', '.join(PLANNERS)}, "
                             f"got {v!r}")  # fmt: skip
        return v
    if name == "model_version":
        if not isinstance(v, str):
            raise ValueError(f"{where}: expected a model version like v1 (a string), got {v!r}")
        return v
    lo, hi = _RANGES[name]
    if not (is_int(v) or isinstance(v, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{where}: expected a finite number in {lo}..{hi}, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Grasp:
    x: float
    y: float
    z: float
    yaw: float


def attempt_rng(seed: int) -> np.random.Generator:
    """The generator of an attempt's own random choices (the world reset draws from `seed` separately)."""
    return np.random.default_rng([seed, 0x6D79726961])


class View(Protocol):
    """What the camera saw before the attempt (myriad_sim.camera.DepthView)."""

    def surface_height(self, x: float, y: float) -> float: ...
    def object_points(self, name: str) -> np.ndarray: ...
    def points_near(self, x: float, y: float, radius: float) -> np.ndarray: ...


def grasp_height(params: GraspParams, surface: float) -> float:
    """The grasp-height rule: grasp_depth below the surface the camera sees, never below min_grasp_z."""
    return max(params.min_grasp_z, surface - params.grasp_depth)


def narrow_axis(points: np.ndarray) -> tuple[float, float, float, float]:
    """Centre (x, y) of an object's seen points (N x 2+), the angle of its narrow horizontal axis and its width.

    The angle is that of the minor principal axis of the points' xy second moments, in (-pi/2, pi/2]; the width
    is the points' extent along it."""
    xy = np.asarray(points, float)[:, :2]
    centre = xy.mean(axis=0)
    cov = np.cov((xy - centre).T) if len(xy) > 1 else np.eye(2)
    _, vecs = np.linalg.eigh(cov)  # eigenvalues ascending: the first eigenvector is the narrow axis
    along = (xy - centre) @ vecs[:, 0]
    angle = math.atan2(vecs[1, 0], vecs[0, 0])
    angle = angle - math.pi if angle > math.pi / 2 else angle + math.pi if angle <= -math.pi / 2 else angle
    return float(centre[0]), float(centre[1]), angle, float(along.max() - along.min())


MIN_SEEN_POINTS = 20  # an object with fewer visible pixels is not aimed at
# The open fingers around the gripper centre (pointing down), measured on the robot model: the lowest surface of
# a finger at a distance `a` along the closing axis lies FINGER_PROFILE_Z above the centre (the slanted bases
# inside, the tips 1.7 cm below the centre at 5-8.7 cm, the bases' outer edge); a finger is 3 cm wide across.
FINGER_PROFILE_A = (0.0, 0.019, 0.022, 0.029, 0.034, 0.040, 0.047, 0.050, 0.0501, 0.087, 0.0871, 0.095)
FINGER_PROFILE_Z = (0.10, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, -0.017, -0.017, 0.022, 0.022)
# m across the closing axis: the finger's 1.5 cm and 5 mm for the depth image's errors.
FINGER_HALF_WIDTH = 0.02
# The descent may stop this much above the grasp height (on a neighbour, the object's top) and still grasp.
BLOCKED_TOLERANCE = 0.01
YAW_TURNS = (0.0, math.pi / 12, -math.pi / 12, math.pi / 6, -math.pi / 6, math.pi / 4, -math.pi / 4)


def descent_stop(points: np.ndarray, x: float, y: float, yaw: float) -> float:
    """The lowest gripper-centre height the open fingers reach at (x, y, yaw) before touching the seen surface
    `points` (N x 3, world): the height where a descent stops. -inf where no seen point is under the fingers."""
    c, s = math.cos(yaw), math.sin(yaw)
    d = points[:, :2] - (x, y)
    along, across = np.abs(d @ (c, s)), np.abs(d @ (-s, c))
    under = (along <= FINGER_PROFILE_A[-1]) & (across <= FINGER_HALF_WIDTH)
    if not under.any():
        return -math.inf
    return float(np.max(points[under, 2] - np.interp(along[under], FINGER_PROFILE_A, FINGER_PROFILE_Z)))


@dataclass(frozen=True)
class Aim:
    """A grasp aimed at an object: centre, yaw and height, the object's seen width, and how far above the grasp
    height the descent would stop (<= 0: it reaches it)."""

    x: float
    y: float
    yaw: float
    z: float
    width: float
    blocked: float


def aim_at(view: View, params: GraspParams, points: np.ndarray) -> Aim:
    """Fingers across the object's narrow axis at the centre of its seen `points`, turned by up to 45 degrees to
    the yaw nearest the narrow axis whose descent is not stopped above the grasp height (within BLOCKED_TOLERANCE)
    by the seen surface (the object's neighbours, the tray's walls), or else the least stopped one."""
    x, y, yaw, width = narrow_axis(points)
    z = grasp_height(params, view.surface_height(x, y))
    near = view.points_near(x, y, FINGER_PROFILE_A[-1] + FINGER_HALF_WIDTH)
    blocked = [descent_stop(near, x, y, yaw + turn) - z for turn in YAW_TURNS]
    k = next((k for k, b in enumerate(blocked) if b <= BLOCKED_TOLERANCE), int(np.argmin(blocked)))
    return Aim(x, y, yaw + YAW_TURNS[k], z, width, blocked[k])


def sample_grasp(
    rng: np.random.Generator,
    params: GraspParams,
    objects: list[str],
    region_x: tuple[float, float],
    region_y: tuple[float, float],
    view: View,
    model: Any = None,
) -> tuple[Grasp, str]:
    """A top-down grasp; the fingers close along the yaw direction (yaw 0: along world x).

    `object`: a random object the camera sees, aimed by `aim_at`, with Gaussian noise on the position and yaw
    (position_noise, yaw_noise). It prefers objects whose descent reaches the grasp height (within
    BLOCKED_TOLERANCE) and narrow enough for the fingers (max_grasp_width), then the former, the latter, any.
    `uniform`: anywhere in the region, any yaw.
    `learned`: the best of candidates scored by `model` (a loaded myriad_learning GraspModel), refined by CEM
    (myriad_learning.policy; numpy only).
    The height follows grasp_height at the aimed point. Returns the grasp and the object aimed at ("" uniform)."""
    if params.strategy == "learned":
        from myriad_learning.policy import learned_grasp

        if model is None:
            raise ValueError(f"strategy 'learned': model {params.model_version} is not loaded")

        return learned_grasp(rng, params, objects, region_x, region_y, view, model)
    name, aims = "", []
    if params.strategy == "object":
        aims = [
            (n, aim_at(view, params, pts))
            for n in objects
            if len(pts := view.object_points(n)) >= MIN_SEEN_POINTS
        ]
        clear = [a for a in aims if a[1].blocked <= BLOCKED_TOLERANCE]
        narrow = [a for a in aims if a[1].width <= params.max_grasp_width]
        aims = [a for a in clear if a in narrow] or clear or narrow or aims
    if aims:
        name, aim = aims[int(rng.integers(len(aims)))]
        dx, dy = rng.normal(0.0, params.position_noise, size=2)
        x, y = aim.x + dx, aim.y + dy
        yaw = aim.yaw + float(rng.normal(0.0, params.yaw_noise))
        yaw = wrap_yaw(yaw)
    else:
        x, y = rng.uniform(*region_x), rng.uniform(*region_y)
        yaw = float(rng.uniform(-math.pi / 2, math.pi / 2))
    return Grasp(float(x), float(y), grasp_height(params, view.surface_height(x, y)), float(yaw)), name


def wrap_yaw(yaw: Any) -> Any:
    """Yaw (a float or an array) in [-pi/2, pi/2): a two-finger grasp turned by pi is the same grasp."""
    return (yaw + math.pi / 2) % math.pi - math.pi / 2


def label(
    before: dict[str, tuple[float, float, float]],
    after: dict[str, tuple[float, float, float]],
    success_height: float,
) -> tuple[bool, str, float]:
    """Success when some object rose more than `success_height`; returns (success, object, rise)."""
    best, rise = "", 0.0
    for name, pos in after.items():
        if name in before:
            dz = pos[2] - before[name][2]
            if dz > rise:
                best, rise = name, dz
    return rise > success_height, best if rise > success_height else "", float(rise)
