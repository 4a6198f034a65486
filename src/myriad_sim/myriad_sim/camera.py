"""A pinhole RGB-D camera rendered by PyBullet, with intrinsics consistent with its projection."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pybullet as pb

from myriad_sim.spec import CameraSpec


@dataclass
class Frame:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32, metres along the optical axis
    segmentation: np.ndarray  # HxW int32, PyBullet body id, -1 for background


@dataclass
class Layer:
    """A camera's raw view of bodies that never move, rendered once and composited into every later capture."""

    rgb: np.ndarray  # HxWx3 uint8
    zbuf: np.ndarray  # HxW float32, the renderer's depth buffer (0 at near .. 1 at far)
    segmentation: np.ndarray  # HxW int32, body ids in the client whose captures it joins


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

    def layer(self, client: int, renderer: int) -> Layer:
        """The raw buffers of one render of what `client` holds."""
        s = self.spec
        _, _, rgba, zbuf, seg = pb.getCameraImage(
            s.width, s.height, self.view, self.projection, renderer=renderer, physicsClientId=client
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(s.height, s.width, 4)
        return Layer(
            np.ascontiguousarray(rgba[:, :, :3]),
            np.asarray(zbuf, dtype=np.float32).reshape(s.height, s.width),
            np.asarray(seg, dtype=np.int32).reshape(s.height, s.width),
        )

    def render(self, client: int, renderer: int, behind: Layer | None = None) -> Frame:
        """A capture; with `behind`, the bodies the client renders composited over that layer by depth: the
        nearer surface wins each pixel, as in one render (TinyRenderer shades each fragment from its own
        triangle alone, and renders no shadows unless asked)."""
        s = self.spec
        f = self.layer(client, renderer)
        rgb, zbuf, seg = f.rgb, f.zbuf, f.segmentation
        if behind is not None:
            back = behind.zbuf < zbuf
            rgb = np.where(back[:, :, None], behind.rgb, rgb)
            zbuf = np.where(back, behind.zbuf, zbuf)
            seg = np.where(back, behind.segmentation, seg)
        depth = s.far * s.near / (s.far - (s.far - s.near) * zbuf.astype(np.float64))
        return Frame(rgb, depth.astype(np.float32), seg)

    def project(self, xyz: np.ndarray | list[float]) -> tuple[float, float]:
        """Pixel (u, v) of a world point, by the same view and projection used for rendering."""
        view = np.asarray(self.view).reshape(4, 4, order="F")
        proj = np.asarray(self.projection).reshape(4, 4, order="F")
        clip = proj @ view @ np.append(np.asarray(xyz, dtype=float), 1.0)
        ndc = clip[:3] / clip[3]
        return (ndc[0] + 1) / 2 * self.spec.width, (1 - ndc[1]) / 2 * self.spec.height

    def rotation(self) -> np.ndarray:
        """Columns: the optical frame's x (image right), y (image down), z (viewing direction) in the world."""
        s = self.spec
        f = np.subtract(s.target, s.position)
        f /= np.linalg.norm(f)
        right = np.cross(f, s.up)
        right /= np.linalg.norm(right)
        return np.column_stack([right, np.cross(f, right), f])

    def deproject(self, us: np.ndarray, vs: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """World points (3xN) of pixels (us, vs) at optical depths `depth`."""
        k = self.intrinsics
        d = np.asarray(depth, float)
        rays = np.stack([(us + 0.5 - k[0, 2]) / k[0, 0] * d, (vs + 0.5 - k[1, 2]) / k[1, 1] * d, d])
        return self.rotation() @ rays + np.asarray(self.spec.position, float)[:, None]

    def surface_height(self, depth: np.ndarray, x: float, y: float, radius_px: int = 3) -> float:
        """Height of the highest surface the depth image shows within `radius_px` of where (x, y, 0) projects."""
        u, v = self.project((x, y, 0.0))
        h, w = depth.shape
        if not (0 <= u < w and 0 <= v < h):
            raise ValueError(f"({x:.3f}, {y:.3f}) is outside the camera's view")
        u0, v0, r = int(u), int(v), radius_px
        vs, us = np.mgrid[max(0, v0 - r) : min(h, v0 + r + 1), max(0, u0 - r) : min(w, u0 + r + 1)]
        vs, us = vs.ravel(), us.ravel()
        return float(self.deproject(us, vs, depth[vs, us])[2].max())


@dataclass
class DepthView:
    """One capture's depth and segmentation with the camera that took it, and which body id each object has."""

    camera: Camera
    depth: np.ndarray  # HxW metres along the optical axis
    segmentation: np.ndarray  # HxW body ids (-1 background)
    bodies: dict[str, int]  # object name -> body id
    # HxWx3 uint8: the same capture's colour image (what the `learned` strategy's model sees besides depth)
    rgb: np.ndarray | None = None
    _points: np.ndarray | None = field(default=None, init=False, repr=False)  # cached, see points_near

    def surface_height(self, x: float, y: float) -> float:
        """Height of the highest surface seen near (x, y): the one the grasp-height rule grasps below."""
        return self.camera.surface_height(self.depth, x, y)

    def object_points(self, name: str) -> np.ndarray:
        """World points (N x 3) of the object's pixels; empty when the camera does not see it."""
        body = self.bodies.get(name)
        vs, us = np.nonzero(self.segmentation == body) if body is not None else ((), ())
        if len(vs) == 0:
            return np.zeros((0, 3))
        return self.camera.deproject(us, vs, self.depth[vs, us]).T

    def points_near(self, x: float, y: float, radius: float) -> np.ndarray:
        """World points (N x 3) of every other pixel (both ways) within `radius` of (x, y) horizontally."""
        if self._points is None:
            vs, us = np.mgrid[0 : self.depth.shape[0] : 2, 0 : self.depth.shape[1] : 2]
            vs, us = vs.ravel(), us.ravel()
            self._points = self.camera.deproject(us, vs, self.depth[vs, us]).T
        d = self._points[:, :2] - (x, y)
        return self._points[np.einsum("ij,ij->i", d, d) <= radius * radius]
