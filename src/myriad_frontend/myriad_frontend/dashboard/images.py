"""Viewable renderings of stored images: colour-mapped depth and segmentation, the grasp drawn on RGB."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from myriad_storage.codec import decode_png, encode_png, png_to_depth, png_to_seg

GRIPPER_OPENING_M = 0.085  # drawn jaw separation; only for display
Projector = Callable[[tuple[float, float, float]], tuple[float, float]]


def depth_png(data: bytes) -> bytes:
    """A 16-bit millimetre depth PNG as a colour-mapped RGB PNG (near = warm; no reading = black)."""
    depth = png_to_depth(data)
    valid = depth > 0
    out = np.zeros((*depth.shape, 3), np.uint8)
    if valid.any():
        lo, hi = float(depth[valid].min()), float(depth[valid].max())
        scaled = (depth - lo) / max(hi - lo, 1e-6)
        grey = np.clip(255.0 * (1.0 - scaled), 0, 255).astype(np.uint8)
        bgr = cv2.applyColorMap(grey, cv2.COLORMAP_TURBO)
        out[valid] = bgr[valid][:, ::-1]
    return encode_png(out)


def segmentation_png(data: bytes) -> bytes:
    """A segmentation PNG (``id + 1``) with one distinct colour per id; background black."""
    seg = png_to_seg(data)
    ids = seg.astype(np.int64) + 1
    hue = (ids * 47) % 180
    hsv = np.stack([hue, np.full_like(hue, 200), np.full_like(hue, 255)], axis=-1).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    rgb[seg < 0] = 0
    return encode_png(rgb)


def _workspace_root() -> Path | None:
    env = os.environ.get("MYRIAD_WS")
    candidates = [Path(env)] if env else []
    candidates += list(Path(__file__).resolve().parents)
    return next((p for p in candidates if (p / "worlds" / "tray.yaml").is_file()), None)


@functools.lru_cache(maxsize=4)
def world_projector(world: str | None = None) -> tuple[Projector, int, int] | None:
    """(project(xyz) -> (u, v), width, height) of the world's camera, or None if no world file is found."""
    if world is None:
        root = _workspace_root()
        if root is None:
            return None
        world = str(root / "worlds" / "tray.yaml")
    from myriad_sim.camera import Camera  # imports pybullet; only needed here
    from myriad_sim.spec import load_world

    cam = Camera(load_world(world).camera)
    return cam.project, cam.spec.width, cam.spec.height


def grasp_png(rgb_data: bytes, grasp: dict, projector: tuple[Projector, int, int]) -> bytes:
    """The RGB image with the grasp drawn: centre, jaw line along yaw, and the two jaws."""
    rgb = decode_png(rgb_data)
    if rgb.ndim == 2:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
    rgb = np.ascontiguousarray(rgb[:, :, :3])
    project, width, height = projector
    sx, sy = rgb.shape[1] / width, rgb.shape[0] / height
    x, y, z, yaw = (float(grasp.get(k, 0.0)) for k in ("x", "y", "z", "yaw"))
    half = GRIPPER_OPENING_M / 2
    dx, dy = half * math.cos(yaw), half * math.sin(yaw)

    def px(wx: float, wy: float) -> tuple[int, int]:
        u, v = project((wx, wy, z))
        return int(round(u * sx)), int(round(v * sy))

    a, b, c = px(x - dx, y - dy), px(x + dx, y + dy), px(x, y)
    thick = max(1, round(min(rgb.shape[:2]) / 160))
    jaw = 0.3 * half
    colour = (255, 40, 40)
    cv2.line(rgb, a, b, colour, thick, cv2.LINE_AA)
    for sign in (-1, 1):
        ex, ey = x + sign * dx, y + sign * dy
        p, q = (
            px(ex - jaw * math.sin(yaw), ey + jaw * math.cos(yaw)),
            px(ex + jaw * math.sin(yaw), ey - jaw * math.cos(yaw)),
        )
        cv2.line(rgb, p, q, colour, thick + 1, cv2.LINE_AA)
    cv2.circle(rgb, c, thick + 2, (255, 230, 0), -1, cv2.LINE_AA)
    return encode_png(rgb)
