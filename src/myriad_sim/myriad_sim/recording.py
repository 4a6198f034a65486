"""What the arm did: the sim state sampled at a fixed rate of sim time, in the process that steps the physics.

A World with a Recorder calls it after every physics step (World.step), so the same samples come out whichever
back end drives the physics (the sim server's controllers, or in-process calls) for the same seed: one row at each
sim time k / rate since the attempt's reset (k = 0 just after the objects are placed), optionally a low-resolution
camera frame at every (rate / camera_rate)-th row. Rows: sim time, arm joint positions and velocities, the tool
pose (position, quaternion xyzw), the gripper command and opening (0 closed .. 1 open), and the commanded action
(the arm's joint position targets in force). Pure logic, no ROS; the message conversions take message classes.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if (
    TYPE_CHECKING
):  # pybullet is imported by the recorder only: readers of recordings (the export) need no physics
    from myriad_sim.camera import Camera
    from myriad_sim.spec import WorldSpec
    from myriad_sim.world import World

MAX_SAMPLES = 6000  # ten minutes at 10 Hz (about 1 MB): a run without resets stops recording there
MAX_FRAMES = 600  # two minutes at 5 Hz (about 30 MB at 128x128)
EE = ("ee.x", "ee.y", "ee.z", "ee.qx", "ee.qy", "ee.qz", "ee.qw")


def columns(arm_joints: tuple[str, ...] | list[str]) -> list[str]:
    """The names of a recording's columns for an arm with these joints."""
    return [
        "time",
        *(f"position.{j}" for j in arm_joints),
        *(f"velocity.{j}" for j in arm_joints),
        *EE,
        "gripper.command",
        "gripper.opening",
        *(f"action.{j}" for j in arm_joints),
    ]


def period_steps(timestep: float, rate: float, name: str) -> int:
    """Physics steps between two samples at `rate` per second of sim time; ValueError naming `name` unless the rate
    is positive and divides the physics rate (so samples fall on physics steps, exactly 1/rate apart)."""
    physics = 1.0 / timestep
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate <= physics):
        raise ValueError(f"{name}: expected a rate in (0, {physics:g}] Hz, got {rate!r}")
    steps = physics / rate
    if abs(steps - round(steps)) > 1e-6 * steps:
        raise ValueError(
            f"{name}: expected a rate that divides the physics rate {physics:g} Hz (e.g. 5, 10, 20, 30, 60), "
            f"got {rate:g}"
        )
    return round(steps)


@dataclass
class Recording:
    """One attempt's samples: `values` rows x columns (float32); `frames` m x h x w x 3 (uint8) or None."""

    seed: int
    rate: float
    columns: list[str]
    values: np.ndarray
    camera_rate: float = 0.0
    frames: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def column(self, prefix: str) -> np.ndarray:
        """The columns whose names start with `prefix` (e.g. "position.", "ee.", "time"), rows x k."""
        return self.values[:, [i for i, c in enumerate(self.columns) if c.startswith(prefix)]]

    @property
    def times(self) -> np.ndarray:
        return self.column("time")[:, 0]

    def frame_of_row(self) -> np.ndarray:
        """Index of the camera frame current at each row (the latest taken at or before it)."""
        every = round(self.rate / self.camera_rate)
        return np.minimum(np.arange(len(self)) // every, len(self.frames) - 1)

    def film(self) -> np.ndarray:
        """The frames stacked top to bottom: one (m * h) x w x 3 image."""
        m, h, w, c = self.frames.shape
        return self.frames.reshape(m * h, w, c)

    @staticmethod
    def unfilm(film: np.ndarray, frames: int) -> np.ndarray:
        """The frames of a film strip (the inverse of `film`)."""
        h = film.shape[0] // frames
        return film.reshape(frames, h, *film.shape[1:])


class Recorder:
    """Samples a World after its physics steps (`World.recorder`); `start` at every reset begins a recording."""

    def __init__(self, spec: WorldSpec, rate: float, camera_rate: float = 0.0, camera_size: int = 128,
                 prefix: str = "") -> None:  # fmt: skip
        self.rate, self.camera_rate = float(rate), float(camera_rate)
        self.every = period_steps(spec.timestep, rate, f"{prefix}trajectory_rate")
        self.camera: Camera | None = None
        if camera_rate:
            name = f"{prefix}trajectory_camera_rate"
            camera_every = period_steps(spec.timestep, camera_rate, name)
            if camera_every % self.every:
                raise ValueError(
                    f"{name}: expected a rate dividing trajectory_rate {rate:g}, got {camera_rate:g}"
                )
            if not (isinstance(camera_size, int) and 8 <= camera_size <= 1024):
                raise ValueError(
                    f"{prefix}trajectory_camera_size: expected 8..1024 pixels, got {camera_size!r}"
                )
            self.frame_every = camera_every // self.every
            from myriad_sim.camera import Camera

            self.camera = Camera(replace(spec.camera, width=camera_size, height=camera_size))
        self.columns = columns(spec.robot.arm_joints)
        self.seed, self.rows, self.frames = 0, [], []

    def start(self, world: World, seed: int) -> None:
        """Begin the recording of an attempt (world just reset, sim time 0) with its first sample."""
        self.seed, self.rows, self.frames = seed, [], []
        self.sample(world)

    def after_step(self, world: World) -> None:
        if world.steps % self.every == 0 and 0 < len(self.rows) < MAX_SAMPLES:
            self.sample(world)

    def sample(self, world: World) -> None:
        if (
            self.camera is not None
            and len(self.rows) % self.frame_every == 0
            and len(self.frames) < MAX_FRAMES  # past the cap: rows only (frame_of_row holds the last frame)
        ):
            self.frames.append(world.capture(self.camera).rgb)
        r = world.robot
        position, orientation = r.tool_pose()
        row = [world.sim_time, *r.joint_positions(), *r.joint_velocities(), *position, *orientation,
               r.gripper_target, r.gripper_opening(), *r.arm_targets]  # fmt: skip
        self.rows.append(np.array(row, dtype=np.float32))

    def recording(self) -> Recording:
        """The samples since the last `start`."""
        values = np.asarray(self.rows, dtype=np.float32).reshape(len(self.rows), len(self.columns))
        frames = np.stack(self.frames) if self.frames else None
        return Recording(self.seed, self.rate, list(self.columns), values, self.camera_rate, frames)


def attach(
    world: World, rate: float, camera_rate: float = 0.0, camera_size: int = 128, prefix: str = ""
) -> None:
    """Record `world`'s attempts at `rate` samples per second of sim time (0: no recording)."""
    world.recorder = Recorder(world.spec, rate, camera_rate, camera_size, prefix) if rate else None


# -- messages (myriad_interfaces/msg/Trajectory) ------------------------------------------------------------------


def to_msg(rec: Recording | None, msg: Any) -> Any:
    """Fill a Trajectory message from a recording (rate 0 for None) and return it."""
    if rec is None:
        return msg
    from myriad_sim.image_codec import cv2_to_imgmsg

    msg.seed, msg.rate, msg.columns = rec.seed, rec.rate, list(rec.columns)
    msg.values = array.array("f", rec.values.astype(np.float32).tobytes())
    if rec.frames is not None:
        msg.camera_rate, msg.frames = rec.camera_rate, len(rec.frames)
        msg.film = cv2_to_imgmsg(rec.film(), "rgb8")
    return msg


def from_msg(msg: Any) -> Recording | None:
    """The recording of a Trajectory message; None when it holds none (rate 0)."""
    if msg.rate <= 0:
        return None
    from myriad_sim.image_codec import imgmsg_to_cv2

    n = len(msg.columns)
    values = np.frombuffer(array.array("f", msg.values), dtype=np.float32)
    if n == 0 or values.size % n:
        raise ValueError(f"trajectory: {values.size} values do not fill rows of {n} columns")
    frames = Recording.unfilm(imgmsg_to_cv2(msg.film, rgb=True), msg.frames) if msg.frames else None
    camera_rate = msg.camera_rate if msg.frames else 0.0
    return Recording(int(msg.seed), msg.rate, list(msg.columns), values.reshape(-1, n), camera_rate, frames)
