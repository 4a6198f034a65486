"""Planning configuration: config/planning.yaml loaded and validated into a frozen dataclass.

The dataclass holds the defaults (those of config/planning.yaml) for fields a file leaves out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myriad_sim.config import ConfigError, ConfigReader, read_yaml

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
    padding: float = 0.003
    self_padding: float = 0.0
    resolution: float = 0.02
    ik_restarts: int = 20
    position_tolerance: float = 0.002
    orientation_tolerance: float = 0.02
    cartesian_step: float = 0.02
    max_joint_jump: float = 0.4
    objects_vs_gripper: bool = False
    velocity_scaling: float = 1.0
    acceleration_scaling: float = 1.0
    densify: float = 0.02
    sample_period: float = 0.02
    obstacle_source: str = "ground_truth"
    voxel_size: float = 0.02
    pixel_stride: int = 2
    known_tolerance: float = 0.01
    fill_depth: float = 1.0

    def planner_params(self, name: str) -> dict[str, float]:
        return dict((self.planners or {}).get(name, {}))


def _choice(r: ConfigReader, key: str, options: tuple[str, ...], default: str) -> str:
    v = r.string(key, default)
    if v not in options:
        r.fail(key, f"one of {', '.join(options)}", v)
    return v


def _flag(r: ConfigReader, key: str, default: bool) -> bool:
    v = r.get(key, default)
    if not isinstance(v, bool):
        r.fail(key, "true or false", v)
    return v


def _fraction(r: ConfigReader, key: str, default: float) -> float:
    v = r.number(key, default, positive=True)
    if v > 1.0:
        r.fail(key, "a number in (0, 1]", v)
    return v


def _planners(r: ConfigReader) -> dict[str, dict[str, float]]:
    raw: Any = r.get("planners", {})
    if not isinstance(raw, dict):
        r.fail("planners", "a mapping of planner name to parameters", raw)
    out = {}
    for name, params in raw.items():
        if name not in PLANNERS:
            r.fail(f"planners.{name}", f"a planner among {', '.join(PLANNERS)}", name)
        pr = r.child(params if params is not None else {}, f"planners.{name}.")
        out[name] = {k: pr.number(k) for k in list(pr.data)}
        if any(v < 0 for v in out[name].values()):
            pr.fail(next(k for k, v in out[name].items() if v < 0), "a non-negative number", out[name])
    return out


def load_config(path: Path | str) -> PlanningConfig:
    """Load and validate a planning YAML; errors name the file and the field."""
    path = Path(path)
    r, d = ConfigReader(path, read_yaml(path)), PlanningConfig()
    col, kin, cart, tim, obs = (
        r.sub(k, {}) for k in ("collision", "kinematics", "cartesian", "timing", "obstacles")
    )
    config = PlanningConfig(
        default_planner=_choice(r, "default_planner", PLANNERS, d.default_planner),
        time_limit=r.number("time_limit", d.time_limit, positive=True),
        simplify=_flag(r, "simplify", d.simplify),
        try_direct=_flag(r, "try_direct", d.try_direct),
        planners=_planners(r),
        padding=col.number("padding", d.padding),
        self_padding=col.number("self_padding", d.self_padding),
        resolution=col.number("resolution", d.resolution, positive=True),
        ik_restarts=kin.integer("restarts", d.ik_restarts, positive=True),
        position_tolerance=kin.number("position_tolerance", d.position_tolerance, positive=True),
        orientation_tolerance=kin.number("orientation_tolerance", d.orientation_tolerance, positive=True),
        cartesian_step=cart.number("step", d.cartesian_step, positive=True),
        max_joint_jump=cart.number("max_joint_jump", d.max_joint_jump, positive=True),
        objects_vs_gripper=_flag(cart, "objects_vs_gripper", d.objects_vs_gripper),
        velocity_scaling=_fraction(tim, "velocity_scaling", d.velocity_scaling),
        acceleration_scaling=_fraction(tim, "acceleration_scaling", d.acceleration_scaling),
        densify=tim.number("densify", d.densify, positive=True),
        sample_period=tim.number("sample_period", d.sample_period, positive=True),
        obstacle_source=_choice(obs, "source", OBSTACLE_SOURCES, d.obstacle_source),
        voxel_size=obs.number("voxel_size", d.voxel_size, positive=True),
        pixel_stride=obs.integer("pixel_stride", d.pixel_stride, positive=True),
        known_tolerance=obs.number("known_tolerance", d.known_tolerance, positive=True),
        fill_depth=obs.number("fill_depth", d.fill_depth),
    )
    r.finish()
    return config
