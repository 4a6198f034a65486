"""numpy <-> sensor_msgs/Image, for numpy 2 and OpenCV 5 (the PyPI `cv-bridge` is ROS 1's and breaks on both).

The one image codec of the workspace: the sim server encodes, the planner, grasp sampler, CLE, Experiment and the
logger (myriad_storage.records) decode with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import Image

# encoding -> (dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "32SC1": (np.dtype(np.int32), 1),
}


def imgmsg_to_cv2(msg: Image, rgb: bool = False) -> np.ndarray:
    """The image as a HxW or HxWxC array (a copy), in the message's channel order (bgr8/bgra8 turned to RGB(A) if
    `rgb`). A step of 0 means unpadded rows; the last row may omit its padding."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODINGS)}")
    dtype, channels = ENCODINGS[msg.encoding]
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    h, w = int(msg.height), int(msg.width)
    row = w * channels * dtype.itemsize
    step = int(msg.step) or row
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if step < row or buf.size < h * step - (step - row):
        raise ValueError(f"{msg.encoding} image {w}x{h}: step {step} and {buf.size} data bytes are too small")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1))
    arr = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder("="))
    arr = arr.reshape(h, w, channels) if channels > 1 else arr.reshape(h, w)
    if rgb and msg.encoding.startswith("bgr"):
        arr = arr[:, :, [2, 1, 0, 3][:channels]]
    return arr


def cv2_to_imgmsg(arr: np.ndarray, encoding: str, frame_id: str = "", stamp: Any = None) -> Image:
    """Wrap an array as an Image in `encoding` (which must match the array's dtype and channel count)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    got = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.dtype != dtype or got != channels or arr.ndim not in (2, 3):
        raise ValueError(
            f"{encoding} needs a {dtype} array with {channels} channel(s), got {arr.dtype} {arr.shape}"
        )
    arr = np.ascontiguousarray(arr)
    msg = Image()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = arr.tobytes()
    return msg
