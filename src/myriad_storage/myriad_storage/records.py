"""Convert a myriad_interfaces/msg/GraspAttempt into the stored attempt record and PNG images.

Pure functions on the message's fields (no rclpy import): testable with the generated message classes. Images are
decoded by the workspace's one codec, myriad_sim.image_codec.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import bson
import bson.errors
import numpy as np

from myriad_sim import recording
from myriad_sim.image_codec import imgmsg_to_cv2

from .codec import decode_png, depth_to_png, encode_png, seg_to_png

IMAGE_FIELDS = ("pre_rgb", "pre_depth", "pre_segmentation", "post_rgb")
RECORD_FIELDS = (
    "attempt_key", "campaign", "item_id", "item_index", "attempt_index", "backend", "seed", "params", "extra",
    "grasp", "objects", "success", "lifted_object", "lift_height", "timings", "sim_time", "code_version", "camera",
    "trajectory",
)  # fmt: skip
FILM = "trajectory_rgb"  # the image of a trajectory's camera frames, stacked top to bottom
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


def object_record(
    name: str, source: str, body_id: int, position: Sequence[float], orientation: Sequence[float]
) -> dict:
    """An entry of a record's `objects`."""
    return {
        "name": name,
        "source": source,
        "body_id": int(body_id),
        "position": [float(v) for v in position],
        "orientation": [float(v) for v in orientation],
    }


def trajectory_record(rec: recording.Recording | None) -> tuple[dict | None, dict[str, bytes]]:
    """A record's `trajectory` (None without samples) and its image: {seed, rate, columns, dtype, shape, data (the
    rows x columns little-endian float32 array as bytes)} and, with camera frames, camera {rate, frames, width,
    height, image: the name of the PNG holding the frames stacked top to bottom}."""
    if rec is None or len(rec) == 0:
        return None, {}
    values = np.ascontiguousarray(rec.values, dtype="<f4")
    doc = {"seed": int(rec.seed), "rate": float(rec.rate), "columns": list(rec.columns), "dtype": "<f4",
           "shape": list(values.shape), "data": values.tobytes()}  # fmt: skip
    if rec.frames is None:
        return doc, {}
    m, h, w, _ = rec.frames.shape
    doc["camera"] = {"rate": float(rec.camera_rate), "frames": m, "width": w, "height": h, "image": FILM}
    return doc, {FILM: encode_png(rec.film())}


def trajectory_from_record(doc: dict, film_png: bytes | None = None) -> recording.Recording:
    """The recording of a record's `trajectory` (with its camera frames when their PNG is given)."""
    values = np.frombuffer(doc["data"], dtype=doc["dtype"]).reshape(doc["shape"])
    cam = doc.get("camera")
    frames = recording.Recording.unfilm(decode_png(film_png), cam["frames"]) if cam and film_png else None
    rate = cam["rate"] if frames is not None else 0.0
    return recording.Recording(doc["seed"], doc["rate"], list(doc["columns"]), values, rate, frames)


def camera_point(camera: dict, xyz: Any) -> np.ndarray:
    """A world point in the optical frame of a record's ``camera`` with a pose (``position``, ``orientation`` xyzw
    of the optical frame: x right, y down, z along the view); its z is the point's optical depth."""
    x, y, z, w = camera["orientation"]
    r = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip
    return r.T @ (np.asarray(xyz, float) - np.asarray(camera["position"], float))


def project(camera: dict, xyz: Any) -> list[float] | None:
    """Pixel (u, v) of a world point, if the record's ``camera`` has a pose (see camera_point) and intrinsics
    ``k``; else None."""
    if not {"k", "position", "orientation"} <= camera.keys():
        return None
    p = camera_point(camera, xyz)
    if p[2] <= 0:
        return None
    k = camera["k"]
    return [float(k[0] * p[0] / p[2] + k[2] - 0.5), float(k[4] * p[1] / p[2] + k[5] - 0.5)]


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
    try:
        bson.encode(value)  # what MongoDB cannot hold (an integer beyond 64 bits, a NUL in a key) fails here
    except (OverflowError, bson.errors.InvalidDocument) as exc:
        raise ValueError(f"{field} cannot be stored in MongoDB: {exc}") from None
    return value


def attempt_msg_to_record(msg: Any) -> tuple[dict, dict[str, bytes]]:
    """The attempt record dict and its PNG images (empty images are left out) from a GraspAttempt."""
    if not msg.attempt_key:
        raise ValueError("GraspAttempt.attempt_key is empty")
    g = msg.grasp
    ci, cp = msg.camera_info, msg.camera_pose
    camera = {"width": int(ci.width), "height": int(ci.height), "k": [float(v) for v in ci.k]}
    position = [cp.position.x, cp.position.y, cp.position.z]
    orientation = [cp.orientation.x, cp.orientation.y, cp.orientation.z, cp.orientation.w]
    if (position, orientation) != (
        [0.0] * 3,
        [0.0, 0.0, 0.0, 1.0],
    ):  # not the message's default: a known pose
        camera.update(position=position, orientation=orientation)
    trajectory, images = trajectory_record(recording.from_msg(msg.trajectory))
    if trajectory is not None and trajectory["seed"] != msg.seed:
        raise ValueError(
            f"trajectory: recorded after the reset with seed {trajectory['seed']}, not {msg.seed}"
        )
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
        camera=camera,
        trajectory=trajectory,
    )
    roles = {"pre_rgb": "rgb", "pre_depth": "depth", "pre_segmentation": "seg", "post_rgb": "rgb"}
    for name in IMAGE_FIELDS:
        img = getattr(msg, name)
        if img.height and img.width:
            try:
                images[name] = image_msg_to_png(img, roles[name])
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    return record, images
