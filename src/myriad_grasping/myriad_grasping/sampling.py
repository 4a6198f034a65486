"""Grasp-attempt parameters and seeded grasp sampling (pure logic, no ROS)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

STRATEGIES = ("uniform", "object")
# Closed ranges of the numeric fields (metres, newtons); every value must also be finite.
_RANGES: dict[str, tuple[float, float]] = {
    "position_noise": (0.0, 0.5),
    "approach_height": (0.01, 1.0),
    "lift_height": (0.01, 1.0),
    "success_height": (0.001, 1.0),
    "gripper_force": (0.1, 200.0),
    "grasp_depth": (0.0, 0.2),
    "min_grasp_z": (0.001, 1.0),
}


@dataclass(frozen=True)
class GraspParams:
    """Everything one attempt depends on besides its seed. Stored with every attempt."""

    object_count: int = 5
    strategy: str = "object"
    position_noise: float = 0.01
    approach_height: float = 0.15
    lift_height: float = 0.30
    success_height: float = 0.10
    gripper_force: float = 10.0
    grasp_depth: float = 0.04
    # Lowest gripper-centre height: the finger pads reach 3 cm below it and must clear the tray floor (z 0.006)
    # by the planner's collision padding (config/planning.yaml).
    min_grasp_z: float = 0.04
    planner: str = ""

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
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(where: str, name: str, v: Any) -> Any:
    """The validated value of field `name` (integers accepted for floats); ValueError naming `where` otherwise."""
    if name == "object_count":
        if type(v) is not int or not 1 <= v <= 20:
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
    lo, hi = _RANGES[name]
    if type(v) not in (int, float) or not math.isfinite(v) or not lo <= v <= hi:
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


def sample_grasp(
    rng: np.random.Generator,
    params: GraspParams,
    objects: list[tuple[str, tuple[float, float, float]]],
    region_x: tuple[float, float],
    region_y: tuple[float, float],
    surface_height: Callable[[float, float], float] | None = None,
) -> tuple[Grasp, str]:
    """A top-down grasp: `object` aims at a random object's position (with noise), `uniform` anywhere in the region.

    The height is grasp_depth below the surface the camera sees there (`surface_height`), else below the
    object's origin; never below min_grasp_z. Returns the grasp and the name of the object aimed at ("" for
    uniform)."""
    yaw = float(rng.uniform(-math.pi / 2, math.pi / 2))
    name, z = "", params.min_grasp_z
    if params.strategy == "object" and objects:
        name, (x, y, z) = objects[int(rng.integers(len(objects)))]
        dx, dy = rng.normal(0.0, params.position_noise, size=2)
        x, y, z = x + dx, y + dy, z - params.grasp_depth / 2
    else:
        x, y = rng.uniform(*region_x), rng.uniform(*region_y)
    if surface_height is not None:
        z = surface_height(x, y) - params.grasp_depth
    return Grasp(float(x), float(y), float(max(params.min_grasp_z, z)), yaw), name


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
