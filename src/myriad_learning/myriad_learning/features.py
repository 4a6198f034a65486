"""What the grasp model sees of a candidate grasp (pure numpy, no torch): a crop of the pre-grasp RGB-D image
centred on the grasp and turned so that the fingers close along its rows, plus the grasp's own parameters.

The same function serves training (images decoded from the stored PNGs) and the `learned` strategy (the live
capture), so both see identical inputs: depth is rounded to whole millimetres as the stored PNG holds it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from myriad_storage.records import camera_point, project

CROP = 32  # pixels a side of the model's input
SPAN = 0.192  # m of the scene a crop covers (6 mm per pixel; the open fingers reach 9.5 cm from the centre)
HEIGHT_SCALE = 0.1  # m of height above the grasp that maps to 1.0 (clipped to [-1, 1])
CHANNELS = 4  # R, G, B, height of the seen surface above the grasp
VECTOR = 4  # sin 2yaw, cos 2yaw, grasp height (dm), seen height above the grasp at its centre


def crop_grid(camera: dict, x: float, y: float, z: float, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel coordinates (map_x, map_y, CROP x CROP float32) of the crop of grasp (x, y, z, yaw): rows
    along the closing direction, SPAN metres square at the grasp's height."""
    centre = np.asarray(project(camera, (x, y, z)))
    along = np.asarray(project(camera, (x + 0.05 * math.cos(yaw), y + 0.05 * math.sin(yaw), z))) - centre
    across = np.array([-along[1], along[0]])  # the image's y axis points down: this turns like world x -> y
    offsets = (np.arange(CROP) + 0.5 - CROP / 2) * (SPAN / CROP / 0.05)
    grid = centre + offsets[None, :, None] * along + offsets[:, None, None] * across
    return grid[..., 0].astype(np.float32), grid[..., 1].astype(np.float32)


def grasp_features(
    rgb: np.ndarray, depth: np.ndarray, camera: dict, grasps: Sequence[Sequence[float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of grasps (x, y, z, yaw) in one capture: images (N, CHANNELS, CROP, CROP) and vectors
    (N, VECTOR), float32. `camera` is a record's camera (k, position, orientation); depth in metres (0: none)."""
    depth_mm = np.rint(np.asarray(depth, np.float64) * 1000.0).astype(np.float32)
    colour = np.asarray(rgb, np.float32) / 255.0 - 0.5
    images = np.zeros((len(grasps), CHANNELS, CROP, CROP), np.float32)
    vectors = np.zeros((len(grasps), VECTOR), np.float32)
    for i, (x, y, z, yaw) in enumerate(grasps):
        mx, my = crop_grid(camera, x, y, z, yaw)
        c = cv2.remap(colour, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        d = cv2.remap(depth_mm, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        along_view = camera_point(camera, (x, y, z))[2] * 1000.0  # the grasp's optical depth, mm
        height = np.where(d > 0, np.clip((along_view - d) / 1000.0 / HEIGHT_SCALE, -1.0, 1.0), 0.0)
        images[i, :3] = c.transpose(2, 0, 1)
        images[i, 3] = height
        centre = height[CROP // 2 - 1 : CROP // 2 + 1, CROP // 2 - 1 : CROP // 2 + 1].mean()
        vectors[i] = (math.sin(2 * yaw), math.cos(2 * yaw), z * 10.0, centre)
    return images, vectors
