"""Planning configuration: config/planning.yaml loaded and validated into a frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myriad_sim.spec import SpecError as ConfigError
from myriad_sim.spec import _Reader, read_yaml

PLANNERS = ("RRTConnect", "PRM", "BITstar")
OBSTACLE_SOURCES = ("ground_truth", "depth")

__all__ = ["ConfigError", "PLANNERS", "PlanningConfig", "load_config"]


@dataclass(frozen=True)
class PlanningConfig:
    default_planner: str = "RRTConnect"
    time_limit: float = 5.0
    simplify: bool = True
    try_direct: bool = True
    planners: dict[str, dict[str, float]] | None = None
    padding: float = 0.01
    self_padding: float = 0.0
    resolution: float = 0.02
    ik_restarts: int = 20
    position_tolerance: float = 0.002
    orientation_tolerance: float = 0.02
    cartesian_step: float = 0.005
    max_joint_jump: float = 0.1
    objects_vs_gripper: bool = False
    velocity_scaling: float = 0.5
    acceleration_scaling: float = 0.5
    densify: float = 0.02
    sample_period: float = 0.02
    obstacle_source: str = "ground_truth"
    voxel_size: float = 0.02
    pixel_stride: int = 2
    known_tolerance: float = 0.01
    fill_depth: float = 1.0

    def planner_params(self, name: str) -> dict[str, float]:
        return dict((self.planners or {}).get(name, {}))


def _choice(r: _Reader, key: str, options: tuple[str, ...], default: str) -> str:
    v = r.string(key, default)
    if v not in options:
        r.fail(key, f"one of {', '.join(options)}", v)
    return v


def _flag(r: _Reader, key: str, default: bool) -> bool:
    v = r.get(key, default)
    if not isinstance(v, bool):
        r.fail(key, "true or false", v)
    return v


def _fraction(r: _Reader, key: str, default: float) -> float:
    v = r.number(key, default, positive=True)
    if v > 1.0:
        r.fail(key, "a number in (0, 1]", v)
    return v


def _planners(r: _Reader) -> dict[str, dict[str, float]]:
    raw: Any = r.get("planners", {})
    if not isinstance(raw, dict):
        r.fail("planners", "a mapping of planner name to parameters", raw)
    out = {}
    for name, params in raw.items():
        if name not in PLANNERS:
            r.fail(f"planners.{name}", f"a planner among {', '.join(PLANNERS)}", name)
        pr = _Reader(r.path, params if params is not None else {}, f"planners.{name}.")
        out[name] = {k: pr.number(k) for k in pr.data}
        if any(v < 0 for v in out[name].values()):
            pr.fail(next(k for k, v in out[name].items() if v < 0), "a non-negative number", out[name])
    return out


def load_config(path: Path | str) -> PlanningConfig:
    """Load and validate a planning YAML; errors name the file and the field."""
    path = Path(path)
    r = _Reader(path, read_yaml(path))
    col, kin, cart, tim, obs = (
        _Reader(path, r.get(k, {}), f"{k}.")
        for k in ("collision", "kinematics", "cartesian", "timing", "obstacles")
    )
    return PlanningConfig(
        default_planner=_choice(r, "default_planner", PLANNERS, "RRTConnect"),
        time_limit=r.number("time_limit", 5.0, positive=True),
        simplify=_flag(r, "simplify", True),
        try_direct=_flag(r, "try_direct", True),
        planners=_planners(r),
        padding=col.number("padding", 0.01),
        self_padding=col.number("self_padding", 0.0),
        resolution=col.number("resolution", 0.02, positive=True),
        ik_restarts=kin.integer("restarts", 20, positive=True),
        position_tolerance=kin.number("position_tolerance", 0.002, positive=True),
        orientation_tolerance=kin.number("orientation_tolerance", 0.02, positive=True),
        cartesian_step=cart.number("step", 0.005, positive=True),
        max_joint_jump=cart.number("max_joint_jump", 0.1, positive=True),
        objects_vs_gripper=_flag(cart, "objects_vs_gripper", False),
        velocity_scaling=_fraction(tim, "velocity_scaling", 0.5),
        acceleration_scaling=_fraction(tim, "acceleration_scaling", 0.5),
        densify=tim.number("densify", 0.02, positive=True),
        sample_period=tim.number("sample_period", 0.02, positive=True),
        obstacle_source=_choice(obs, "source", OBSTACLE_SOURCES, "ground_truth"),
        voxel_size=obs.number("voxel_size", 0.02, positive=True),
        pixel_stride=obs.integer("pixel_stride", 2, positive=True),
        known_tolerance=obs.number("known_tolerance", 0.01, positive=True),
        fill_depth=obs.number("fill_depth", 1.0),
    )
