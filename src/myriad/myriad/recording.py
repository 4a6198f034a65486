"""Attempt records of the Experiment API, in the sampler's storage schema (myriad_storage.Store.store_attempt)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from myriad.types import CameraImage, ObjectInfo


@dataclass
class GraspResult:
    """One grasp by Experiment.grasp: what was tried, what happened, and the images before and after."""

    x: float
    y: float
    z: float
    angle: float
    success: bool | None  # grasped and lifted; None when no grasp was executed
    lifted_object: str
    lift_height: float
    outcome: str  # one of myriad_grasping.episode.OUTCOMES
    objects: list[ObjectInfo]
    params: dict[str, Any]
    pre: CameraImage
    post: CameraImage
    sim_time: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    moves: dict[str, dict[str, Any]] = field(default_factory=dict)  # per motion: planner, times, ok, message
    grasp_executed: bool = True


def image_pngs(images: CameraImage | Mapping[str, Any] | None, prefix: str = "pre") -> dict[str, bytes]:
    """PNG bytes by stored image name: a CameraImage becomes {prefix}_rgb/_depth/_segmentation; in a mapping,
    names containing "depth" are depth in metres, "seg" segmentation ids, others colour (uint8/uint16)."""
    from myriad_storage.codec import depth_to_png, encode_png, seg_to_png

    if images is None:
        return {}
    if isinstance(images, CameraImage):
        images = {
            f"{prefix}_rgb": images.rgb,
            f"{prefix}_depth": images.depth,
            f"{prefix}_segmentation": images.segmentation,
        }
    out = {}
    for name, a in images.items():
        a = a.rgb if isinstance(a, CameraImage) else np.asarray(a)
        out[name] = depth_to_png(a) if "depth" in name else seg_to_png(a) if "seg" in name else encode_png(a)
    return out


def camera_record(image: CameraImage) -> dict[str, Any]:
    """A record's `camera`: image size, intrinsics and (when the image knows its camera) the optical frame's pose."""
    if image.camera is not None:
        from myriad_sim.frames import camera_record as record

        return record(image.camera)
    return {
        "width": image.rgb.shape[1],
        "height": image.rgb.shape[0],
        "k": image.intrinsics.flatten().tolist(),
    }


def grasp_record(g: GraspResult, **keys: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The record (built as the grasp sampler's, by myriad_storage.records.attempt_record) and images of a
    GraspResult; `keys` are the record's attempt_key, campaign, item_id, item_index, attempt_index, backend, seed
    and code_version."""
    from myriad_storage.records import attempt_record, object_record

    record = attempt_record(
        **keys,
        params=g.params,
        extra={
            "outcome": g.outcome,
            "grasp_executed": g.grasp_executed,
            "target": "",
            "moves": g.moves,
            "source": "experiment",
        },
        grasp={"x": g.x, "y": g.y, "z": g.z, "yaw": g.angle},
        objects=[object_record(o.name, o.source, o.body_id, o.position, o.orientation) for o in g.objects],
        success=g.success,
        lifted_object=g.lifted_object,
        lift_height=g.lift_height,
        timings=g.timings,
        sim_time=g.sim_time,
        camera=camera_record(g.pre),
        trajectory=None,  # Experiment.grasp records no trajectory
    )
    images = image_pngs(g.pre, "pre")
    images["post_rgb"] = image_pngs({"post_rgb": g.post.rgb})["post_rgb"]
    return record, images
