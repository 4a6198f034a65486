"""World and robot descriptions: YAML files under worlds/ and urdf/, loaded and validated into plain dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from myriad_sim.config import ConfigError, ConfigReader, is_int, read_yaml
from myriad_sim.models import ModelError, resolve_source

SpecError = ConfigError  # a world or robot file is malformed; the message names the file and the field
MAX_CAMERA_PX = 4096  # per side: larger images exhaust the renderer (100000² crashed the back end)


@dataclass(frozen=True)
class FingerSpec:
    joint: str
    open: float
    closed: float


@dataclass(frozen=True)
class GripperSpec:
    wrist_joint: str
    fingers: tuple[FingerSpec, ...]
    tips: tuple[str, ...]
    tip_force: float


@dataclass(frozen=True)
class RobotSpec:
    name: str
    model: str
    arm_joints: tuple[str, ...]
    home: tuple[float, ...]
    velocity_limits: tuple[float, ...]
    acceleration_limits: tuple[float, ...]
    max_force: float
    ee_link: str
    tool_offset: tuple[float, float, float]
    gripper: GripperSpec
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    position: tuple[float, float, float]
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fixed: bool = True
    scale: float = 1.0


@dataclass(frozen=True)
class CameraSpec:
    position: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fov_deg: float
    width: int
    height: int
    near: float
    far: float


@dataclass(frozen=True)
class ObjectsSpec:
    pool: tuple[int, int]
    exclude: tuple[int, ...]  # ids within the pool never drawn
    region_x: tuple[float, float]
    region_y: tuple[float, float]
    drop_height: tuple[float, float]
    drop_interval_steps: int  # steps between one object's drop and the next one's
    settle_steps: int  # at least this many steps after the last drop...
    max_settle_steps: int  # ...and until every object has rested for rest_steps, for at most this many
    rest_speed: float  # m/s: resting, no point of an object within 5 cm of its centre moves faster
    rest_steps: int
    # linear and angular damping of the objects while they settle (0: PyBullet's own)
    settle_damping: float = 0.0


@dataclass(frozen=True)
class SolverSpec:
    """PyBullet's constraint solver (setPhysicsEngineParameter); absent from a world file: PyBullet's defaults.
    worlds/tray.yaml says what its settings were measured to cost and change."""

    iterations: int = 50  # numSolverIterations
    cone_friction: bool = True  # enableConeFriction; false: two friction directions (a pyramid)


@dataclass(frozen=True)
class WorldSpec:
    path: Path
    gravity: tuple[float, float, float]
    timestep: float
    robot: RobotSpec
    models: tuple[ModelSpec, ...]
    camera: CameraSpec
    objects: ObjectsSpec
    workspace_min: tuple[float, float, float]
    workspace_max: tuple[float, float, float]
    solver: SolverSpec = SolverSpec()
    extra: dict[str, Any] = field(default_factory=dict)

    def in_workspace(self, xyz: tuple[float, float, float] | list[float]) -> bool:
        return all(lo <= v <= hi for v, lo, hi in zip(xyz, self.workspace_min, self.workspace_max))


def _check_source(r: ConfigReader, key: str, base: Path) -> str:
    src = r.string(key)
    try:
        resolve_source(src, base)
    except ModelError as exc:
        r.fail(key, "an existing model (file path, pybullet_data:<path> or object:<id>)", f"{src} ({exc})")
    return src


def _robot_urdf(r: ConfigReader, base: Path) -> str:
    """The robot's URDF (relative to its YAML file) as an absolute path."""
    src = _check_source(r, "model", base)
    path = resolve_source(src, base)
    if path.suffix.lower() != ".urdf":
        r.fail("model", "the robot's URDF file (.urdf)", src)
    return str(path)


def load_robot(
    path: Path | str,
    position: Sequence[float] = (0.0, 0.0, 0.0),
    rpy: Sequence[float] = (0.0, 0.0, 0.0),
) -> RobotSpec:
    """Load a robot description YAML (see urdf/iiwa_wsg50.yaml)."""
    path = Path(path)
    r = ConfigReader(path, read_yaml(path))
    joints = r.strings("arm_joints")
    n = len(joints)
    g = r.sub("gripper")
    fingers = g.get("fingers")
    if not isinstance(fingers, list) or not fingers:
        g.fail("fingers", "a non-empty list of {joint, open, closed}", fingers)
    finger_specs = []
    for i, f in enumerate(fingers):
        fr = g.child(f, f"gripper.fingers[{i}].")
        finger_specs.append(FingerSpec(fr.string("joint"), fr.number("open"), fr.number("closed")))
    spec = RobotSpec(
        name=r.string("name"),
        model=_robot_urdf(r, path.parent),
        arm_joints=joints,
        home=r.vector("home", n),
        velocity_limits=r.vector("velocity_limits", n),
        acceleration_limits=r.vector("acceleration_limits", n),
        max_force=r.number("max_force", positive=True),
        ee_link=r.string("ee_link"),
        tool_offset=r.vector("tool_offset", 3),
        gripper=GripperSpec(
            wrist_joint=g.string("wrist_joint"),
            fingers=tuple(finger_specs),
            tips=g.strings("tips"),
            tip_force=g.number("tip_force", positive=True),
        ),
        position=tuple(position),
        rpy=tuple(rpy),
    )
    r.finish()
    return spec


def load_world(path: Path | str, workspace_root: Path | None = None) -> WorldSpec:
    """Load a world YAML (see worlds/tray.yaml). Relative paths resolve against the workspace root."""
    path = Path(path).resolve()
    root = workspace_root or path.parent.parent
    r = ConfigReader(path, read_yaml(path))
    rr = r.sub("robot")
    robot_file = Path(rr.string("description"))
    robot_file = robot_file if robot_file.is_absolute() else root / robot_file
    if not robot_file.is_file():
        rr.fail("description", "an existing robot description file", str(robot_file))
    robot = load_robot(
        robot_file, rr.vector("position", 3, (0.0, 0.0, 0.0)), rr.vector("rpy", 3, (0.0, 0.0, 0.0))
    )
    models = []
    raw_models = r.get("models", [])
    if not isinstance(raw_models, list):
        r.fail("models", "a list of models", raw_models)
    for i, m in enumerate(raw_models):
        mr = r.child(m, f"models[{i}].")
        models.append(
            ModelSpec(
                name=mr.string("name"),
                source=_check_source(mr, "source", root),
                position=mr.vector("position", 3),
                rpy=mr.vector("rpy", 3, (0.0, 0.0, 0.0)),
                fixed=mr.boolean("fixed", True),
                scale=mr.number("scale", 1.0, positive=True),
            )
        )
    c = r.sub("camera")
    camera = CameraSpec(
        position=c.vector("position", 3),
        target=c.vector("target", 3),
        up=c.vector("up", 3),
        fov_deg=c.number("fov_deg", positive=True),
        width=c.integer("width", positive=True),
        height=c.integer("height", positive=True),
        near=c.number("near", positive=True),
        far=c.number("far", positive=True),
    )
    if camera.far <= camera.near:
        c.fail("far", f"a distance beyond near ({camera.near})", camera.far)
    for key in ("width", "height"):
        if getattr(camera, key) > MAX_CAMERA_PX:
            c.fail(key, f"a positive integer up to {MAX_CAMERA_PX} (pixels)", getattr(camera, key))
    if camera.fov_deg >= 180:
        c.fail("fov_deg", "an angle below 180 degrees", camera.fov_deg)
    o = r.sub("objects")
    pool = o.get("pool")
    if not (
        isinstance(pool, list)
        and len(pool) == 2
        and all(map(is_int, pool))
        and 0 <= pool[0] <= pool[1] <= 999
    ):
        o.fail("pool", "[first, last] object ids (integers) within 0..999", pool)
    pool = (int(pool[0]), int(pool[1]))
    exclude = o.get("exclude", [])
    if not isinstance(exclude, list) or not all(is_int(v) and pool[0] <= v <= pool[1] for v in exclude):
        o.fail("exclude", f"a list of object ids within the pool {list(pool)}", exclude)
    if len(set(exclude)) > pool[1] - pool[0]:
        o.fail("exclude", "a list that leaves at least one object of the pool", exclude)
    region = o.sub("region")
    objects = ObjectsSpec(
        pool=pool,
        exclude=tuple(sorted(set(exclude))),
        region_x=region.interval("x"),
        region_y=region.interval("y"),
        drop_height=o.interval("drop_height"),
        drop_interval_steps=o.integer("drop_interval_steps", positive=True),
        settle_steps=o.integer("settle_steps", positive=True),
        max_settle_steps=o.integer("max_settle_steps", positive=True),
        rest_speed=o.number("rest_speed", positive=True),
        rest_steps=o.integer("rest_steps", positive=True),
        settle_damping=o.number("settle_damping", 0.0),
    )
    if not 0.0 <= objects.settle_damping <= 1.0:
        o.fail("settle_damping", "a damping fraction in [0, 1] (0: PyBullet's own)", objects.settle_damping)
    if objects.max_settle_steps < objects.settle_steps:
        o.fail(
            "max_settle_steps",
            f"an integer >= settle_steps ({objects.settle_steps})",
            objects.max_settle_steps,
        )
    sv = r.sub("solver", {})
    solver = SolverSpec(iterations=sv.integer("iterations", SolverSpec.iterations, positive=True),
                        cone_friction=sv.boolean("cone_friction", SolverSpec.cone_friction))  # fmt: skip
    w = r.sub("workspace")
    low, high = w.vector("min", 3), w.vector("max", 3)
    if not all(lo < hi for lo, hi in zip(low, high)):
        w.fail("max", f"a corner above min {list(low)} on every axis", list(high))
    timestep = r.number("timestep", positive=True)
    spec = WorldSpec(
        path=path,
        gravity=r.vector("gravity", 3),
        timestep=timestep,
        robot=robot,
        models=tuple(models),
        camera=camera,
        objects=objects,
        workspace_min=low,
        workspace_max=high,
        solver=solver,
    )
    r.finish()
    return spec
