"""Grasp-attempt parameters and seeded grasp sampling (pure logic, no ROS)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

STRATEGIES = ("uniform", "object")


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
        for k, v in values.items():  # YAML/CLI integers for float fields (ROS messages insist on floats)
            if known[k].type == "float" and isinstance(v, int) and not isinstance(v, bool):
                values[k] = float(v)
        p = cls(**values)
        if (
            not isinstance(p.object_count, int)
            or isinstance(p.object_count, bool)
            or not 1 <= p.object_count <= 20
        ):
            raise ValueError(f"{where}.object_count: expected an integer 1..20, got {p.object_count!r}")
        if p.strategy not in STRATEGIES:
            raise ValueError(f"{where}.strategy: expected one of {STRATEGIES}, got {p.strategy!r}")
        for name in ("approach_height", "lift_height", "success_height", "gripper_force", "min_grasp_z"):
            v = getattr(p, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{where}.{name}: expected a positive number, got {v!r}")
        if not isinstance(p.position_noise, (int, float)) or p.position_noise < 0:
            raise ValueError(
                f"{where}.position_noise: expected a non-negative number, got {p.position_noise!r}"
            )
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
