"""A pinhole RGB-D camera rendered by PyBullet, with intrinsics consistent with its projection."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as pb

from myriad_sim.spec import CameraSpec


@dataclass
class Frame:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32, metres along the optical axis
    segmentation: np.ndarray  # HxW int32, PyBullet body id, -1 for background


class Camera:
    def __init__(self, spec: CameraSpec):
        self.spec = spec
        self.view = pb.computeViewMatrix(spec.position, spec.target, spec.up)
        self.projection = pb.computeProjectionMatrixFOV(
            spec.fov_deg, spec.width / spec.height, spec.near, spec.far
        )

    @property
    def intrinsics(self) -> np.ndarray:
        """3x3 K matrix: vertical field of view fov_deg over `height` pixels, square pixels."""
        s = self.spec
        f = (s.height / 2.0) / math.tan(math.radians(s.fov_deg) / 2.0)
        return np.array([[f, 0.0, s.width / 2.0], [0.0, f, s.height / 2.0], [0.0, 0.0, 1.0]])

    def render(self, client: int, renderer: int) -> Frame:
        s = self.spec
        _, _, rgba, zbuf, seg = pb.getCameraImage(
            s.width, s.height, self.view, self.projection, renderer=renderer, physicsClientId=client
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(s.height, s.width, 4)
        zbuf = np.asarray(zbuf, dtype=np.float64).reshape(s.height, s.width)
        depth = s.far * s.near / (s.far - (s.far - s.near) * zbuf)
        seg = np.asarray(seg, dtype=np.int32).reshape(s.height, s.width)
        return Frame(np.ascontiguousarray(rgba[:, :, :3]), depth.astype(np.float32), seg)

    def project(self, xyz: np.ndarray | list[float]) -> tuple[float, float]:
        """Pixel (u, v) of a world point, by the same view and projection used for rendering."""
        view = np.asarray(self.view).reshape(4, 4, order="F")
        proj = np.asarray(self.projection).reshape(4, 4, order="F")
        clip = proj @ view @ np.append(np.asarray(xyz, dtype=float), 1.0)
        ndc = clip[:3] / clip[3]
        return (ndc[0] + 1) / 2 * self.spec.width, (1 - ndc[1]) / 2 * self.spec.height
