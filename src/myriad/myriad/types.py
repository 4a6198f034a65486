"""Values the Experiment API hands out, its errors, and what it needs from a back end (local or over ROS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from myriad_cle.sim import RobotState, SimAdapter
from myriad_sim.camera import Camera

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


class ExperimentError(ValueError):
    """An argument of an Experiment call is invalid; `argument` names it and the message says why."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class MotionError(RuntimeError):
    """A motion could not be planned (`planned` False) or executed."""

    def __init__(self, message: str, planned: bool = False):
        super().__init__(message)
        self.planned = planned


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    source: str
    body_id: int  # also its value in the segmentation image
    position: Vec3
    orientation: Quat


@dataclass
class CameraImage:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32, metres along the optical axis
    segmentation: np.ndarray  # HxW int32 body ids, -1 background
    intrinsics: np.ndarray  # 3x3 K
    camera: Camera

    def project(self, xyz: Any) -> tuple[float, float]:
        """Pixel (u, v) of a world point in these images."""
        return self.camera.project(xyz)


class Backend(Protocol):
    """One simulated back end as the Experiment drives it; spawn raises myriad_sim.world.SpawnError."""

    def reset(self, seed: int, object_count: int) -> None: ...
    def spawn(
        self,
        name: str,
        source: str,
        position: Vec3,
        orientation: Quat,
        scale: float,
        mass: float,
        fixed: bool,
    ) -> None: ...
    def delete(self, name: str) -> None: ...
    def objects(self) -> list[ObjectInfo]: ...
    def capture(self) -> CameraImage: ...
    def robot_state(self) -> RobotState: ...
    def move(
        self,
        goal_type: str,
        joints: Any = (),
        pose: tuple[Vec3, Quat] | None = None,
        seed: int = 0,
        max_contact_force: float = 0.0,
    ) -> bool: ...
    def gripper(self, opening: float, force: float) -> float: ...
    def sim(self, object_count: int) -> SimAdapter: ...
    def close(self) -> None: ...
