"""Convert a myriad_interfaces/msg/GraspAttempt into the stored attempt record and PNG images.

Pure functions on the message's fields (no rclpy import): testable with the generated message classes. Images are
decoded by the workspace's one codec, myriad_sim.image_codec.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from myriad_sim.image_codec import imgmsg_to_cv2

from .codec import depth_to_png, encode_png, seg_to_png

IMAGE_FIELDS = ("pre_rgb", "pre_depth", "pre_segmentation", "post_rgb")
RECORD_FIELDS = (
    "attempt_key", "campaign", "item_id", "item_index", "attempt_index", "backend", "seed", "params", "extra",
    "grasp", "objects", "success", "lifted_object", "lift_height", "timings", "sim_time", "code_version", "camera",
)  # fmt: skip
EXTRA_DEFAULTS = {"outcome": "", "target": "", "moves": {}, "source": ""}  # source: "collect" or "experiment"


def attempt_record(**fields: Any) -> dict:
    """The stored attempt record, the one builder for both ways of storing an attempt (`myriad collect`'s logger
    and Experiment.record): exactly RECORD_FIELDS, and `extra` with at least the keys of EXTRA_DEFAULTS; with
    `extra.grasp_executed`, also `grasp_executed`, and `success` None when no grasp was executed."""
    missing = [f for f in RECORD_FIELDS if f not in fields]
    unknown = sorted(set(fields) - set(RECORD_FIELDS))
    if missing or unknown:
        raise ValueError(f"attempt record: missing fields {missing}, unknown fields {unknown}")
    # seed is uint64 in the message; BSON has signed 64-bit ints only.
    if fields["seed"] >= 2**63:
        raise ValueError(f"seed {fields['seed']} does not fit a signed 64-bit integer (BSON)")
    record = {**{f: fields[f] for f in RECORD_FIELDS}, "extra": {**EXTRA_DEFAULTS, **fields["extra"]}}
    if "grasp_executed" in record["extra"]:  # the label is kept only for attempts that executed a grasp
        record["grasp_executed"] = bool(record["extra"]["grasp_executed"])
        record["success"] = record["success"] if record["grasp_executed"] else None
    return record


def object_record(name: str, source: str, body_id: int, position, orientation) -> dict:
    """An entry of a record's `objects`."""
    return {
        "name": name,
        "source": source,
        "body_id": int(body_id),
        "position": [float(v) for v in position],
        "orientation": [float(v) for v in orientation],
    }


def image_msg_to_png(img: Any, role: str) -> bytes:
    """PNG bytes of an image by role: "rgb" (8-bit colour), "depth" (metres or mm -> 16-bit mm), "seg"."""
    a = imgmsg_to_cv2(img, rgb=True)
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
    record = attempt_record(
        attempt_key=msg.attempt_key,
        campaign=msg.campaign,
        item_id=msg.item_id,
        item_index=int(msg.item_index),
        attempt_index=int(msg.attempt_index),
        backend=msg.backend,
        seed=int(msg.seed),
        params=_json_object(msg.params_json, "params_json"),
        extra=_json_object(msg.extra_json, "extra_json"),
        grasp={"x": g.x, "y": g.y, "z": g.z, "yaw": g.yaw},
        objects=[
            object_record(
                o.name,
                o.source,
                o.body_id,
                (o.pose.position.x, o.pose.position.y, o.pose.position.z),
                (o.pose.orientation.x, o.pose.orientation.y, o.pose.orientation.z, o.pose.orientation.w),
            )
            for o in msg.objects
        ],
        success=bool(msg.success),
        lifted_object=msg.lifted_object,
        lift_height=float(msg.lift_height),
        timings=_json_object(msg.timings_json, "timings_json"),
        sim_time=float(msg.sim_time),
        code_version=msg.code_version,
        camera={"width": int(ci.width), "height": int(ci.height), "k": [float(v) for v in ci.k]},
    )
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
