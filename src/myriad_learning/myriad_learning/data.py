"""Training examples from stored campaigns: each labelled attempt's grasp features and label (numpy only).

Read in batches by the export's reader (myriad_storage.export.Source), images decoded by the stored codec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from myriad_learning.features import grasp_features
from myriad_storage.codec import decode_png, png_to_depth
from myriad_storage.export import Source
from myriad_storage.store import Store

MIN_ATTEMPTS = 20  # labelled attempts a training needs at least
IMAGES = ("pre_rgb", "pre_depth")


@dataclass
class Examples:
    images: np.ndarray  # (N, CHANNELS, CROP, CROP) float32
    vectors: np.ndarray  # (N, VECTOR) float32
    labels: np.ndarray  # (N,) bool: grasped and lifted
    seeds: np.ndarray  # (N,) int64: the attempts' seeds (the split is by seed)
    skipped: int = 0  # labelled attempts without a camera pose or pre-grasp images


def load_examples(store: Store, campaigns: list[str], min_attempts: int = MIN_ATTEMPTS) -> Examples:
    """The labelled attempts (executed grasps) of `campaigns`; ValueError for an unknown campaign, fewer than
    `min_attempts` usable attempts, or only one label class."""
    for name in campaigns:
        if store.campaign(name) is None:
            known = [c["name"] for c in store.campaigns(limit=20)]
            raise ValueError(f"no campaign named {name!r}; known: {', '.join(known) or 'none'}")
    query = {"campaign": {"$in": campaigns}, "success": {"$in": [True, False]}}
    images, vectors, labels, seeds, skipped = [], [], [], [], 0
    for doc in Source(store, query, IMAGES).docs(None):
        cam, g, png = doc.get("camera") or {}, doc.get("grasp") or {}, doc["_png"]
        if not ({"k", "position", "orientation"} <= cam.keys() and g and set(IMAGES) <= png.keys()):
            skipped += 1
            continue
        grasp = [g["x"], g["y"], g["z"], g["yaw"]]
        im, vec = grasp_features(decode_png(png["pre_rgb"]), png_to_depth(png["pre_depth"]), cam, [grasp])
        images.append(im[0])
        vectors.append(vec[0])
        labels.append(bool(doc["success"]))
        seeds.append(int(doc["seed"]))
    what = f"campaign{'s' if len(campaigns) > 1 else ''} {', '.join(campaigns)}"
    if len(labels) < min_attempts:
        raise ValueError(
            f"{what}: {len(labels)} labelled attempts with images and a camera pose"
            + (f" ({skipped} more without)" if skipped else "")
            + f"; training needs at least {min_attempts}"
        )
    if len(set(labels)) < 2:
        raise ValueError(
            f"{what}: all {len(labels)} labelled attempts are {'successes' if labels[0] else 'failures'}; "
            "training needs both successes and failures"
        )
    return Examples(np.stack(images), np.stack(vectors), np.array(labels), np.array(seeds, np.int64), skipped)


def validation_mask(seeds: np.ndarray, fraction: float) -> np.ndarray:
    """Which attempts are held out for validation: by seed (a seed's attempts all on one side), about
    `fraction` of them, the same for the same seeds whatever the order."""
    bucket = (np.asarray(seeds, np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(54)  # 10 bits
    return bucket < np.uint64(round(fraction * 1024))
