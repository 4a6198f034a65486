"""The simulated world: a PyBullet client built from a WorldSpec, with named entities, seeded resets and a camera."""

from __future__ import annotations

import logging
import math
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as pb

from myriad_sim.camera import Camera, Frame, Layer
from myriad_sim.config import is_int
from myriad_sim.description import load_robot_body
from myriad_sim.models import MESH_SUFFIXES, ModelError, check_model_file, invisible, resolve_source
from myriad_sim.robot import Robot
from myriad_sim.spec import ModelSpec, WorldSpec

log = logging.getLogger("myriad_sim")
MAX_OBJECTS = 20  # objects per reset, as campaigns allow
MIN_SCALE, MAX_SCALE = 1e-4, 100.0
MIN_MASS, MAX_MASS = 1e-4, 1000.0  # kg
SLEEP = pb.ACTIVATION_STATE_ENABLE_SLEEPING | pb.ACTIVATION_STATE_SLEEP
AWAKE = pb.ACTIVATION_STATE_WAKE_UP | pb.ACTIVATION_STATE_DISABLE_SLEEPING
RENDERERS = ("auto", "egl", "tiny")
BODY_DAMPING = 0.04  # PyBullet's linear and angular damping of a body loaded from a model file


class SpawnError(ValueError):
    """A spawn request cannot be honoured; the message names the argument at fault."""


@dataclass
class Entity:
    name: str
    source: str
    body: int


@dataclass
class EntityState:
    name: str
    source: str
    body: int
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    linear_velocity: tuple[float, float, float]
    angular_velocity: tuple[float, float, float]


class World:
    """One physics instance. Not thread-safe: one thread uses it (the sim server's physics thread)."""

    def __init__(self, spec: WorldSpec, renderer: str = "auto"):
        if renderer not in RENDERERS:
            raise ValueError(f"renderer: expected auto, egl or tiny, got {renderer!r}")
        self.spec = spec
        self.client = pb.connect(pb.DIRECT)
        try:
            self._setup(renderer)
        except BaseException:  # no PyBullet client (and EGL context) outlives a World that failed to start
            pb.disconnect(self.client)
            raise

    def _setup(self, renderer: str) -> None:
        self.renderer_name, self.renderer = "tiny", pb.ER_TINY_RENDERER
        if renderer in ("auto", "egl"):
            self._load_egl(required=renderer == "egl")
        self.camera = Camera(self.spec.camera)
        self.entities: dict[str, Entity] = {}
        # Physics steps since the last rebuild: the episode's sim time, which the stored data uses.
        self.steps = 0
        # Steps on the back end's clock (ROS stamps, /clock): it runs on across rebuilds, one step past the last
        # instant, so that a stamp never repeats or goes back (RViz and tf2 drop or reset on that).
        self.clock_steps = 0
        self.robot: Robot
        self.recorder = None  # a myriad_sim.recording.Recorder: samples after every step, restarted by reset
        # static models (see _hide_static): body -> model, its visual shapes
        self._static: dict[int, tuple[ModelSpec, list]] = {}
        # static URDF models by name -> the file to load them from now (invisible), their visual shapes
        self._drawn_once: dict[str, tuple[Path, list]] = {}
        self._layers: dict[tuple, Layer] = {}  # (camera spec, static bodies) -> what the camera sees of them
        self.build()

    def _load_egl(self, required: bool) -> None:
        """EGL rendering (Mesa on CPU here) must be loaded before any body exists, or images come out blank.

        The plugin's first two frames shade differently from every later one (measured: the same scene's third
        capture differs in ~20k of 472x472 RGB pixels, depth and segmentation equal), so a back end's first
        attempt would not replay elsewhere; two throw-away frames of the empty world make every capture alike."""
        loader = pkgutil.get_loader("eglRenderer")
        plugin = -1
        if loader is not None:
            plugin = pb.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=self.client)
        if plugin >= 0:
            self.renderer_name, self.renderer = "egl", pb.ER_BULLET_HARDWARE_OPENGL
            for _ in range(2):
                pb.getCameraImage(8, 8, renderer=self.renderer, physicsClientId=self.client)
        elif required:
            raise RuntimeError("the EGL renderer plugin did not load")

    @property
    def sim_time(self) -> float:
        """Seconds since the last rebuild (the episode's time)."""
        return self.steps * self.spec.timestep

    @property
    def clock_time(self) -> float:
        """The back end's clock, seconds: sim time that runs on across rebuilds."""
        return self.clock_steps * self.spec.timestep

    @property
    def episode_start(self) -> float:
        """The clock time at which the episode's sim time was 0."""
        return (self.clock_steps - self.steps) * self.spec.timestep

    def build(self) -> None:
        """Rebuild the world from its spec (resetSimulation: bit-identical state, unlike restoreState)."""
        c = self.client
        pb.resetSimulation(physicsClientId=c)
        pb.setGravity(*self.spec.gravity, physicsClientId=c)
        pb.setTimeStep(self.spec.timestep, physicsClientId=c)
        sv = self.spec.solver
        pb.setPhysicsEngineParameter(
            deterministicOverlappingPairs=1,
            numSolverIterations=sv.iterations,
            enableConeFriction=int(sv.cone_friction),
            physicsClientId=c,
        )
        if self.entities:  # a rebuild: the clock runs on
            self.clock_steps += 1
        self.entities.clear()
        self.steps = 0
        r = self.spec.robot
        body = load_robot_body(c, r.model, r.position, pb.getQuaternionFromEuler(r.rpy))
        self.entities["robot"] = Entity("robot", r.model, body)
        self.robot = Robot(c, body, r)
        self.robot.reset_joints(r.home)
        for m in self.spec.models:
            path = self._drawn_once[m.name][0] if m.name in self._drawn_once else None
            self.entities[m.name] = Entity(m.name, m.source, self._add_model(m, c, path))
        self._hide_static()

    def _model_path(self, m: ModelSpec) -> Path:
        return resolve_source(m.source, self.spec.path.parent.parent)

    def _add_model(self, m: ModelSpec, client: int, path: Path | None = None) -> int:
        path = path or self._model_path(m)
        return self._load(path, m.position, pb.getQuaternionFromEuler(m.rpy), m.scale, m.fixed, client=client)

    def _hide_static(self) -> None:
        """TinyRenderer's time goes to shading pixels, most of them the table and the tray, which never move. So
        models that cannot move (fixed, no moving joint) are invisible to it (alpha 0: it skips such a shape), and
        each camera sees them through a layer rendered once (see capture); measured bit-identical to rendering
        everything at once. Not for EGL, which blends by alpha. From the second build on, such URDF models are
        loaded with an invisible speck instead of their visual shapes (the table's textured meshes cost 10 ms per
        reset), and keep those of the first build for visual_shapes."""
        self._static.clear()
        if self.renderer != pb.ER_TINY_RENDERER:
            return
        c = self.client
        for m in self.spec.models:
            body = self.entities[m.name].body
            if m.name in self._drawn_once:
                self._static[body] = (m, self._drawn_once[m.name][1])
                continue
            joints = range(pb.getNumJoints(body, physicsClientId=c))
            moving = any(pb.getJointInfo(body, j, physicsClientId=c)[2] != pb.JOINT_FIXED for j in joints)
            held = m.source.lower().endswith(".sdf")  # a fixed SDF model is held by a constraint
            if not m.fixed or moving or held:
                continue
            shapes = pb.getVisualShapeData(body, physicsClientId=c)
            for v in shapes:
                pb.changeVisualShape(body, v[1], rgbaColor=(0.0, 0.0, 0.0, 0.0), physicsClientId=c)
            self._static[body] = (m, shapes)
            path = self._model_path(m)
            if path.suffix.lower() == ".urdf" and (speck := invisible(path)) != path:
                self._drawn_once[m.name] = (speck, shapes)

    def visual_shapes(self, body: int) -> list:
        """PyBullet's visual shape data of a body, with the colours it was loaded with."""
        if body in self._static:
            return self._static[body][1]
        return pb.getVisualShapeData(body, physicsClientId=self.client)

    def _load(
        self,
        path,
        position,
        orientation,
        scale: float,
        fixed: bool,
        mass: float = 0.0,
        client: int | None = None,
    ) -> int:
        c = self.client if client is None else client
        suffix = path.suffix.lower()
        try:
            if suffix == ".urdf":
                body = pb.loadURDF(
                    str(path),
                    position,
                    orientation,
                    useFixedBase=fixed,
                    globalScaling=scale,
                    physicsClientId=c,
                )
            elif suffix == ".sdf":
                bodies = pb.loadSDF(str(path), globalScaling=scale, physicsClientId=c)
                if not bodies:
                    raise SpawnError(f"source: PyBullet found no model in {path}")
                body = bodies[0]
                pb.resetBasePositionAndOrientation(body, position, orientation, physicsClientId=c)
                if fixed:
                    pb.createConstraint(
                        body,
                        -1,
                        -1,
                        -1,
                        pb.JOINT_FIXED,
                        [0, 0, 0],
                        [0, 0, 0],
                        position,
                        [0, 0, 0, 1],
                        orientation,
                        physicsClientId=c,
                    )
            else:
                mesh_scale = [scale] * 3
                col = pb.createCollisionShape(
                    pb.GEOM_MESH, fileName=str(path), meshScale=mesh_scale, physicsClientId=c
                )
                vis = pb.createVisualShape(
                    pb.GEOM_MESH, fileName=str(path), meshScale=mesh_scale, physicsClientId=c
                )
                if col < 0:
                    raise SpawnError(f"source: PyBullet could not build a collision shape from {path}")
                body = pb.createMultiBody(
                    0.0 if fixed else (mass or 0.1), col, vis, position, orientation, physicsClientId=c
                )
        except pb.error as exc:  # a file it could not parse: a link without a name, a missing mesh
            raise SpawnError(f"source: PyBullet could not load {path}: {exc}") from None
        if body < 0:
            raise SpawnError(f"source: PyBullet could not load {path}")
        if mass > 0 and suffix != ".obj" and suffix != ".stl":
            pb.changeDynamics(body, -1, mass=mass, physicsClientId=c)
        if fixed:
            # A fixed body asleep: PyBullet then skips its contacts with sleeping objects (a pair is computed only
            # when one of its bodies is awake), half the cost of a step while the arm moves over a resting tray.
            # Outcomes unchanged on 800 paired seeds (bench/bench_grasp.py).
            pb.changeDynamics(body, -1, activationState=SLEEP, physicsClientId=c)
        return body

    def reset(self, seed: int, object_count: int, object_ids: list[int] | None = None) -> list[EntityState]:
        """Rebuild the world and drop objects into the tray one after another, all drawn from `seed`, and let
        them come to rest (objects dropped together interpenetrate and keep moving for seconds, so that the camera
        would see a scene other than the one the robot grasps in). Returns the settled objects.

        The idle arm sleeps (is not simulated) while the objects fall, and the objects sleep once they have come
        to rest: a sleeping body costs no physics until something touches it (contact wakes it). Measured: a step
        before the gripper reaches the tray costs about half; the trays are the same (to 1e-7 m)."""
        o = self.spec.objects
        count = len(object_ids) if object_ids else object_count
        if not is_int(count) or not 0 <= count <= MAX_OBJECTS:
            raise SpawnError(f"object_count: expected an integer 0..{MAX_OBJECTS}, got {count!r}")
        rng = np.random.default_rng(seed)
        if object_ids:
            ids = list(object_ids)
        else:
            pool = np.setdiff1d(np.arange(o.pool[0], o.pool[1] + 1), o.exclude)
            if object_count > len(pool):
                raise SpawnError(
                    f"object_count: {object_count} objects, but the world's object pool holds {len(pool)} "
                    f"({self.spec.path.name}: objects.pool {list(o.pool)} less objects.exclude)"
                )
            ids = [int(v) for v in rng.choice(pool, size=object_count, replace=False)]
        self.build()
        self._activation(self.robot.body, SLEEP)
        if self.recorder is not None:
            self.recorder.start(self, seed)
        for k, oid in enumerate(ids):
            pos = (rng.uniform(*o.region_x), rng.uniform(*o.region_y), rng.uniform(*o.drop_height))
            orn = pb.getQuaternionFromEuler((0.0, 0.0, rng.uniform(-np.pi, np.pi)))
            self.spawn(f"object_{k}", f"object:{oid}", pos, orn, check_overlap=False)
            self.step(o.drop_interval_steps)
        self.settle()
        self._drop_escaped()
        self._activation(self.robot.body, AWAKE)
        for name in self.object_names():
            self._activation(self.entities[name].body, SLEEP)
        return self.object_states()

    def _activation(self, body: int, state: int) -> None:
        pb.changeDynamics(body, -1, activationState=state, physicsClientId=self.client)

    def settle(self, check_every: int = 24) -> int:
        """Step at least settle_steps, then until every object has rested (rest_speed, checked every `check_every`
        steps) for rest_steps, or max_settle_steps have passed; returns the steps taken. (An object leaning on a
        wall can stand still for an instant, then topple.) With settle_damping the objects lose their motion faster
        while they settle (damping is no force at rest), then get PyBullet's own damping back for the grasp."""
        o = self.spec.objects
        bodies = [self.entities[n].body for n in self.object_names()]
        if o.settle_damping:
            self._damp(bodies, o.settle_damping)
        try:
            return self._settle(bodies, check_every)
        finally:
            if o.settle_damping:
                self._damp(bodies, BODY_DAMPING)

    def _damp(self, bodies: list[int], damping: float) -> None:
        for b in bodies:
            pb.changeDynamics(
                b, -1, linearDamping=damping, angularDamping=damping, physicsClientId=self.client
            )

    def _settle(self, bodies: list[int], check_every: int) -> int:
        o, c = self.spec.objects, self.client

        def resting() -> bool:
            for b in bodies:
                lin, ang = pb.getBaseVelocity(b, physicsClientId=c)
                if math.hypot(*lin) + 0.05 * math.hypot(*ang) > o.rest_speed:
                    return False
            return True

        self.step(o.settle_steps)
        taken, rested = o.settle_steps, 0
        while taken < o.max_settle_steps:
            rested = rested + check_every if resting() else 0
            if rested > o.rest_steps:
                break
            n = min(check_every, o.max_settle_steps - taken)
            self.step(n)
            taken += n
        return taken

    def _drop_escaped(self) -> None:
        """Objects that bounced out of the workspace are removed so they never count as grasped."""
        for name in self.object_names():
            if not self.spec.in_workspace(self.state(name).position):
                self.delete(name)

    def object_names(self) -> list[str]:
        fixed = {"robot"} | {m.name for m in self.spec.models}
        return [n for n in self.entities if n not in fixed]

    def object_states(self) -> list[EntityState]:
        return [self.state(n) for n in self.object_names()]

    def spawn(
        self,
        name: str,
        source: str,
        position: Sequence[float],
        orientation: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
        scale: float = 1.0,
        mass: float = 0.0,
        fixed: bool = False,
        check_overlap: bool = True,
    ) -> Entity:
        """Add a model by source at a pose; validates every argument before touching the world."""
        if not name:
            raise SpawnError("name: expected a non-empty entity name")
        if name in self.entities:
            raise SpawnError(f"name: an entity called {name!r} exists already")
        if not MIN_SCALE <= scale <= MAX_SCALE:
            raise SpawnError(f"scale: expected a positive number {MIN_SCALE}..{MAX_SCALE}, got {scale}")
        if not (mass == 0 or MIN_MASS <= mass <= MAX_MASS):
            raise SpawnError(
                f"mass: expected a positive number of kilograms {MIN_MASS}..{MAX_MASS} (or 0 to keep the model's own), got {mass}"
            )
        if not all(math.isfinite(v) for v in (*position, *orientation)):
            raise SpawnError(f"pose: expected finite numbers, got {tuple(position)}, {tuple(orientation)}")
        if not self.spec.in_workspace(position):
            raise SpawnError(
                f"pose: position {tuple(round(float(v), 3) for v in position)} is outside the workspace "
                f"{self.spec.workspace_min}..{self.spec.workspace_max}"
            )
        try:
            path = resolve_source(source)
            check_model_file(path)
        except ModelError as exc:
            raise SpawnError(f"source: {exc}") from None
        if path.suffix.lower() in MESH_SUFFIXES and mass == 0 and not fixed:
            mass = 0.1
        body = self._load(path, position, orientation, scale, fixed, mass)
        if check_overlap:
            other = self._penetrating(body)
            if other:
                pb.removeBody(body, physicsClientId=self.client)
                raise SpawnError(f"pose: {name!r} at {tuple(position)} would be inside {other!r}")
        entity = Entity(name, source, body)
        self.entities[name] = entity
        return entity

    def _penetrating(self, body: int, depth: float = 0.005) -> str | None:
        for other in self.entities.values():
            points = pb.getClosestPoints(body, other.body, -depth, physicsClientId=self.client)
            if points:
                return other.name
        return None

    def delete(self, name: str) -> None:
        if name not in self.entities:
            raise KeyError(f"no entity called {name!r}; entities: {sorted(self.entities)}")
        if name == "robot" or name in {m.name for m in self.spec.models}:
            raise ValueError(f"{name!r} is part of the world file and cannot be deleted")
        pb.removeBody(self.entities.pop(name).body, physicsClientId=self.client)

    def state(self, name: str) -> EntityState:
        if name not in self.entities:
            raise KeyError(f"no entity called {name!r}; entities: {sorted(self.entities)}")
        e = self.entities[name]
        pos, orn = pb.getBasePositionAndOrientation(e.body, physicsClientId=self.client)
        lin, ang = pb.getBaseVelocity(e.body, physicsClientId=self.client)
        return EntityState(e.name, e.source, e.body, pos, orn, lin, ang)

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            pb.stepSimulation(physicsClientId=self.client)
            self.steps += 1
            self.clock_steps += 1
            if self.recorder is not None:
                self.recorder.after_step(self)

    def capture(self, camera: Camera | None = None) -> Frame:
        """What `camera` (by default the world's) sees now."""
        camera = camera or self.camera
        return camera.render(self.client, self.renderer, self._static_layer(camera))

    def _static_layer(self, camera: Camera) -> Layer | None:
        """The camera's view of the static models alone, rendered once in a client of their own."""
        if not self._static:
            return None
        key = (camera.spec, tuple(self._static))
        if key not in self._layers:
            c = pb.connect(pb.DIRECT)
            try:
                ids = {self._add_model(m, c): body for body, (m, _) in self._static.items()}
                layer = camera.layer(c, pb.ER_TINY_RENDERER)
            finally:
                pb.disconnect(c)
            lookup = np.full(max(ids) + 2, -1, dtype=np.int32)  # index id + 1: the background (-1) stays -1
            for own, body in ids.items():
                lookup[own + 1] = body
            layer.segmentation = lookup[layer.segmentation + 1]
            self._layers[key] = layer
        return self._layers[key]

    def close(self) -> None:
        if pb.isConnected(self.client):
            pb.disconnect(self.client)
