"""Convert a myriad_interfaces/msg/GraspAttempt into the stored attempt record and PNG images.

Pure functions on the message's fields (no rclpy import): testable with the generated message classes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .codec import depth_to_png, encode_png, seg_to_png

# encoding -> (numpy dtype, channels)
_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "mono8": ("u1", 1),
    "8UC1": ("u1", 1),
    "8UC3": ("u1", 3),
    "mono16": ("u2", 1),
    "16UC1": ("u2", 1),
    "32FC1": ("f4", 1),
    "32SC1": ("i4", 1),
}
IMAGE_FIELDS = ("pre_rgb", "pre_depth", "pre_segmentation", "post_rgb")


def image_msg_to_array(img: Any) -> np.ndarray:
    """Decode a sensor_msgs/Image (height, width, step, encoding, is_bigendian, data) to a numpy array."""
    enc = img.encoding
    if enc not in _ENCODINGS:
        raise ValueError(f"unsupported image encoding {enc!r}; expected one of {sorted(_ENCODINGS)}")
    kind, ch = _ENCODINGS[enc]
    dtype = np.dtype(kind).newbyteorder(">" if img.is_bigendian else "<")
    h, w = int(img.height), int(img.width)
    row = w * ch * dtype.itemsize
    step = int(img.step) or row
    buf = np.frombuffer(img.data, dtype=np.uint8)
    if step < row or buf.size < h * step - (step - row):
        raise ValueError(f"{enc} image {w}x{h}: step {step} and {buf.size} data bytes are too small")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1))
    a = np.ascontiguousarray(rows).view(dtype).reshape((h, w, ch) if ch > 1 else (h, w))
    a = a.astype(dtype.newbyteorder("="), copy=False)
    if enc.startswith("bgr"):
        a = a[:, :, [2, 1, 0, 3][:ch]]
    return a


def image_msg_to_png(img: Any, role: str) -> bytes:
    """PNG bytes of an image by role: "rgb" (8-bit colour), "depth" (metres or mm -> 16-bit mm), "seg"."""
    a = image_msg_to_array(img)
    if role == "depth":
        return encode_png(a) if a.dtype == np.uint16 else depth_to_png(a)
    if role == "seg":
        return seg_to_png(a)
    return encode_png(a)


def _json_object(text: str, field: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{field} is not valid JSON ({exc}): {text[:80]!r}") from None
    if not isinstance(value, dict):  # a content error of the message, hence ValueError
        raise ValueError(f"{field} must be a JSON object, got {type(value).__name__}")  # noqa: TRY004
    return value


def attempt_msg_to_record(msg: Any) -> tuple[dict, dict[str, bytes]]:
    """The attempt record dict and its PNG images (empty images are left out) from a GraspAttempt."""
    if not msg.attempt_key:
        raise ValueError("GraspAttempt.attempt_key is empty")
    g = msg.grasp
    ci = msg.camera_info
    record = {
        "attempt_key": msg.attempt_key,
        "campaign": msg.campaign,
        "item_id": msg.item_id,
        "item_index": int(msg.item_index),
        "attempt_index": int(msg.attempt_index),
        "backend": msg.backend,
        "seed": int(msg.seed),
        "params": _json_object(msg.params_json, "params_json"),
        "extra": _json_object(msg.extra_json, "extra_json"),
        "grasp": {"x": g.x, "y": g.y, "z": g.z, "yaw": g.yaw},
        "objects": [
            {
                "name": o.name,
                "source": o.source,
                "body_id": int(o.body_id),
                "position": [o.pose.position.x, o.pose.position.y, o.pose.position.z],
                "orientation": [
                    o.pose.orientation.x,
                    o.pose.orientation.y,
                    o.pose.orientation.z,
                    o.pose.orientation.w,
                ],
            }
            for o in msg.objects
        ],
        "success": bool(msg.success),
        "lifted_object": msg.lifted_object,
        "lift_height": float(msg.lift_height),
        "timings": _json_object(msg.timings_json, "timings_json"),
        "sim_time": float(msg.sim_time),
        "code_version": msg.code_version,
        "camera": {"width": int(ci.width), "height": int(ci.height), "k": [float(v) for v in ci.k]},
    }
    if "grasp_executed" in record["extra"]:  # the label is kept only for attempts that executed a grasp
        record["grasp_executed"] = bool(record["extra"]["grasp_executed"])
        record["success"] = record["success"] if record["grasp_executed"] else None
    # seed is uint64 in the message; BSON has signed 64-bit ints only.
    if record["seed"] >= 2**63:
        raise ValueError(f"seed {record['seed']} does not fit a signed 64-bit integer (BSON)")
    roles = {"pre_rgb": "rgb", "pre_depth": "depth", "pre_segmentation": "seg", "post_rgb": "rgb"}
    images = {}
    for name in IMAGE_FIELDS:
        img = getattr(msg, name)
        if img.height and img.width:
            try:
                images[name] = image_msg_to_png(img, roles[name])
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    return record, images
