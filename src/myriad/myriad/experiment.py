"""Experiment: the user-facing API over one back end, in-process (default) or a running one by namespace."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pybullet as pb

from myriad.recording import GraspResult, grasp_record, image_pngs
from myriad.types import Backend, CameraImage, ExperimentError, ObjectInfo, Quat, Vec3
from myriad_cle.engine import ClosedLoopEngine, Trace
from myriad_cle.sim import RobotState
from myriad_cle.transfer import TransferFunctions
from myriad_grasping.sampling import Grasp
from myriad_runtime import workspace, workspace_path
from myriad_sim.camera import DepthView
from myriad_sim.config import is_int
from myriad_sim.spec import load_world
from myriad_sim.world import MAX_MASS, MAX_OBJECTS, MAX_SCALE, MIN_MASS, MIN_SCALE, SpawnError

if TYPE_CHECKING:
    from myriad_grasping.episode import MoveResult

_SPAWN_ARGS = {"source": "path", "pose": "pose", "scale": "scale", "mass": "mass", "name": "name"}


def _check_scene(seed: Any, object_count: Any) -> None:
    """An Experiment's seed and object count, as its constructor and reset take them."""
    if not is_int(seed) or not 0 <= seed < 2**63:
        raise ExperimentError("seed", f"expected an integer 0..2**63-1, got {seed!r}")
    if not is_int(object_count) or not 0 <= object_count <= MAX_OBJECTS:
        raise ExperimentError("object_count", f"expected an integer 0..{MAX_OBJECTS}, got {object_count!r}")


def parse_pose(pose: Any) -> tuple[Vec3, Quat]:
    """(x, y, z), (x, y, z, roll, pitch, yaw), (x, y, z, qx, qy, qz, qw) or (position, orientation)."""
    try:
        if len(pose) == 2:
            position, orientation = (tuple(float(v) for v in part) for part in pose)
        else:
            flat = tuple(float(v) for v in pose)
            position, orientation = flat[:3], flat[3:] or (0.0, 0.0, 0.0, 1.0)
    except (TypeError, ValueError):
        position, orientation = (), ()
    if len(orientation) == 3:
        orientation = tuple(pb.getQuaternionFromEuler(orientation))
    if len(position) != 3 or len(orientation) != 4 or not all(map(math.isfinite, position + orientation)):
        raise ExperimentError(
            "pose",
            f"expected (x, y, z), (x, y, z, roll, pitch, yaw), (x, y, z, qx, qy, qz, qw) or (position, orientation), got {pose!r}",
        )
    norm = math.sqrt(sum(v * v for v in orientation))
    if norm < 1e-9:
        raise ExperimentError("pose", f"orientation quaternion {orientation} has zero length")
    return position, tuple(v / norm for v in orientation)


class Experiment:
    """`with Experiment() as exp:` a local in-process world; `Experiment(namespace="/myriad/b0")` a running back end.

    world: the world file (relative to the workspace), which for a remote back end must be the one it runs.
    """

    def __init__(
        self,
        namespace: str | None = None,
        world: str | Path = "worlds/tray.yaml",
        renderer: str = "auto",
        seed: int = 0,
        object_count: int = 0,
        database_uri: str | None = None,
        campaign: str = "experiment",
        database: str = "myriad",
        timeout: float = 30.0,
    ):
        _check_scene(seed, object_count)
        world = workspace_path(world)
        self.spec = load_world(world)
        self.seed, self.object_count, self.campaign = seed, object_count, campaign
        self._database_uri, self._database, self._store = database_uri, database, None
        self._session, self._records = uuid.uuid4().hex[:8], 0
        if namespace is None:
            from myriad.local import LocalBackend

            self.backend: Backend = LocalBackend(self.spec, renderer)
        else:
            from myriad.remote import RosBackend

            self.backend = RosBackend(namespace, self.spec, timeout)

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the back end and the database client; any later call raises ExperimentError. Idempotent."""
        if isinstance(self.backend, _Closed):
            return
        backend, self.backend = self.backend, _Closed()
        backend.close()
        if self._store is not None:
            self._store.close()

    # -- scene -------------------------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None, object_count: int | None = None) -> list[ObjectInfo]:
        """Rebuild the world and drop `object_count` random objects into the tray, all drawn from `seed`."""
        seed = self.seed if seed is None else seed
        object_count = self.object_count if object_count is None else object_count
        _check_scene(seed, object_count)
        self.seed, self.object_count = seed, object_count
        self.backend.reset(self.seed, self.object_count)
        return self.backend.objects()

    def load_object(
        self,
        path: str | Path,
        pose: Any,
        scale: float = 1.0,
        mass: float | None = None,
        name: str | None = None,
        fixed: bool = False,
    ) -> ObjectInfo:
        """Add a URDF, SDF, OBJ or STL file (or "object:<id>", "pybullet_data:<path>") at `pose`.

        mass (kg) defaults to the model's own (0.1 kg for meshes). Errors name the argument at fault."""
        position, orientation = parse_pose(pose)
        if type(scale) not in (int, float) or not MIN_SCALE <= scale <= MAX_SCALE:
            raise ExperimentError(
                "scale", f"expected a positive number {MIN_SCALE}..{MAX_SCALE}, got {scale!r}"
            )
        if mass is not None and (type(mass) not in (int, float) or not MIN_MASS <= mass <= MAX_MASS):
            raise ExperimentError(
                "mass", f"expected a positive number of kilograms {MIN_MASS}..{MAX_MASS}, got {mass!r}"
            )
        source = str(path)
        if ":" not in source:
            p = Path(source).expanduser()
            source = str(p if p.is_absolute() else Path.cwd() / p)
        if name is None:
            stem, taken = Path(source.rpartition(":")[2]).stem, self.objects()
            name = next(f"{stem}_{k}" for k in range(len(taken) + 1) if f"{stem}_{k}" not in taken)
        try:
            self.backend.spawn(name, source, position, orientation, float(scale), float(mass or 0.0), fixed)
        except SpawnError as exc:
            arg, _, why = str(exc).partition(": ")
            raise ExperimentError(_SPAWN_ARGS.get(arg, arg), why) from None
        return self.objects()[name]

    def remove_object(self, name: str) -> None:
        try:
            self.backend.delete(name)
        except (KeyError, ValueError) as exc:
            raise ExperimentError("name", str(exc.args[0])) from None

    def objects(self) -> dict[str, ObjectInfo]:
        """The movable objects by name (not the robot or the world file's fixed models)."""
        return {o.name: o for o in self.backend.objects()}

    def camera(self) -> CameraImage:
        return self.backend.capture()

    def robot_state(self) -> RobotState:
        return self.backend.robot_state()

    # -- motion ------------------------------------------------------------------------------------------------------

    def move_joints(self, q: Sequence[float]) -> None:
        """Move the arm to joint positions q (planned around obstacles); MotionError if impossible."""
        q_in = q
        n = len(self.spec.robot.arm_joints)
        try:
            q = [float(v) for v in q]
        except (TypeError, ValueError):
            q = [math.nan]
        if not all(map(math.isfinite, q)):
            raise ExperimentError(
                "q", f"expected {n} joint positions as finite numbers (radians), got {q_in!r}"
            )
        if len(q) != n:
            raise ExperimentError("q", f"expected {n} joint positions, got {len(q)}")
        self.backend.move("joints", joints=q, seed=self.seed)

    def move_to(self, pose: Any, cartesian: bool = False) -> None:
        """Move the gripper centre to a pose (planned; a straight line if `cartesian`); MotionError if impossible."""
        self.backend.move("cartesian" if cartesian else "pose", pose=parse_pose(pose), seed=self.seed)

    def open_gripper(self, force: float = 10.0) -> float:
        """Open the fingers; returns the opening reached (0 closed .. 1 open)."""
        return self.backend.gripper(1.0, force)

    def close_gripper(self, force: float = 10.0) -> float:
        """Close the fingers with at most `force` newtons each; returns the opening reached."""
        return self.backend.gripper(0.0, force)

    def _view(self, image: CameraImage) -> DepthView:
        bodies = {name: o.body_id for name, o in self.objects().items()}
        return DepthView(image.camera, image.depth, image.segmentation, bodies, image.rgb)

    def surface_height(self, x: float, y: float, image: CameraImage | None = None) -> float:
        """Height of the topmost surface the camera sees at (x, y) (what the grasp-height rule grasps below)."""
        try:
            return self._view(image or self.camera()).surface_height(x, y)
        except ValueError as exc:
            raise ExperimentError("x, y", str(exc)) from None

    def sample_grasp(self, image: CameraImage | None = None, **params: Any) -> Grasp:
        """The grasp `myriad collect`'s sampler makes in this scene for this experiment's seed (strategy, noise and
        heights from `params`, GraspParams fields): the same function on the same image."""
        from myriad_grasping.sampling import GraspParams, attempt_rng, sample_grasp

        p = GraspParams.from_dict({**GraspParams().to_dict(), **params}, "grasp params")
        region = self.spec.objects
        view = self._view(image or self.camera())
        model = None
        if p.strategy == "learned":  # the stored model, from the experiment's database
            from myriad_learning.registry import ModelRegistry

            model = ModelRegistry(self.store()).load(p.model_version)
        return sample_grasp(
            attempt_rng(self.seed), p, list(self.objects()), region.region_x, region.region_y, view, model
        )[0]

    def grasp(self, x: float, y: float, angle: float, z: float | None = None, **params: Any) -> GraspResult:
        """Top-down grasp at (x, y) turned by `angle` (rad; the fingers close along it): approach, descend to z or
        until contact, close, lift, and label.

        z defaults to the grasp-height rule (myriad_grasping.sampling.grasp_height: grasp_depth below the seen
        surface, at least min_grasp_z), as the grasp sampler's; `params` override GraspParams fields. The motion
        sequence is the grasp sampler's own (myriad_grasping.episode.execute_grasp)."""
        from myriad_grasping.episode import classify, execute_grasp
        from myriad_grasping.sampling import GraspParams, grasp_height, label

        for name, value in (("x", x), ("y", y), ("angle", angle), ("z", 0.0 if z is None else z)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ExperimentError(name, f"expected a finite number, got {value!r}")
        p = GraspParams.from_dict({**GraspParams().to_dict(), **params}, "grasp params")
        timings, clock = {}, time.perf_counter()
        pre = self.camera()
        z = grasp_height(p, self.surface_height(x, y, pre)) if z is None else z
        before = self.objects()

        def lap(name: str) -> None:
            nonlocal clock
            timings[name] = round(time.perf_counter() - clock, 4)
            clock = time.perf_counter()

        outcome, executed, moves = execute_grasp(_Motions(self), Grasp(x, y, z, angle), p, self.seed, lap)
        after = {n: o.position for n, o in self.objects().items()}
        success, lifted, rise = label({n: o.position for n, o in before.items()}, after, p.success_height)
        outcome, labelled = classify(outcome, executed, success)
        post = self.camera()
        return GraspResult(
            x, y, z, angle, labelled, lifted, rise, outcome, list(before.values()), p.to_dict(), pre, post,
            self.robot_state().sim_time, timings, moves, executed,
        )  # fmt: skip

    # -- storage and closed loop -------------------------------------------------------------------------------------

    def store(self) -> Any:
        """The myriad_storage Store records go to: database_uri, else $MYRIAD_MONGO_URI, else a local server in data/."""
        if isinstance(self.backend, _Closed):
            raise _Closed.error()
        if self._store is None:
            from myriad_storage.server import resolve_uri
            from myriad_storage.store import Store

            uri, _ = resolve_uri(self._database_uri, workspace() / "data")
            self._store = Store(uri, self._database)
        return self._store

    def record(
        self, sample: GraspResult | Mapping[str, Any], images: CameraImage | Mapping[str, Any] | None = None
    ) -> str:
        """Store a grasp (or a dict of record fields) with images, as the grasp sampler does; returns its key."""
        from myriad_runtime import code_version

        item_id = f"{self.campaign}/{self._session}-{self._records:06d}"
        keys = {
            "attempt_key": f"{item_id}#0",
            "campaign": self.campaign,
            "item_id": item_id,
            "item_index": self._records,
            "attempt_index": 0,
            "backend": "experiment",
            "seed": self.seed,
            "code_version": code_version(),
        }
        if isinstance(sample, GraspResult):
            record, pngs = grasp_record(sample, **keys)
        elif isinstance(sample, Mapping):
            record, pngs = {**keys, **sample}, {}
        else:
            raise ExperimentError(
                "sample", f"expected a GraspResult or a mapping of record fields, got {type(sample).__name__}"
            )
        pngs.update(image_pngs(images))
        key, _ = self.store().store_attempt(record, pngs)
        self._records += 1
        return key

    def run(
        self,
        brain: Any,
        transfer_functions: TransferFunctions | str | Path | Iterable[Callable],
        duration: float,
        timestep: float | None = None,
    ) -> Trace:
        """Run `brain` in closed loop through the transfer functions for `duration` s of sim time, from the
        current scene (seeded by the experiment's seed); returns the trace of robot states."""
        if not duration > 0:
            raise ExperimentError("duration", f"expected a positive number of seconds, got {duration!r}")
        engine = ClosedLoopEngine(
            self.backend.sim(self.object_count), brain, transfer_functions, timestep, self.seed
        )
        try:
            return engine.run(duration)
        finally:
            engine.close()


class _Closed:
    """The back end of a closed Experiment: every use is an ExperimentError."""

    @staticmethod
    def error() -> ExperimentError:
        return ExperimentError("experiment", "it is closed; create a new Experiment")

    def __getattr__(self, name: str) -> Any:
        raise self.error()


class _Motions:
    """The grasp sequence's motion interface over an Experiment (errors become failed MoveResults)."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment

    def move(
        self,
        kind: str,
        position: Sequence[float],
        orientation: Sequence[float],
        seed: int,
        max_contact_force: float = 0.0,
    ) -> MoveResult:
        from myriad_grasping.episode import MoveResult

        pose = parse_pose((position, orientation))
        try:
            contact = self.experiment.backend.move(
                kind, pose=pose, seed=seed, max_contact_force=max_contact_force
            )
        except RuntimeError as exc:  # MotionError, or the back end not answering
            return MoveResult(False, str(exc), refused=not getattr(exc, "planned", False))
        return MoveResult(True, contact=contact)

    def gripper(self, opening: float, force: float) -> tuple[float, bool]:
        return self.experiment.backend.gripper(opening, force), False
