"""The grasp-success model (PyTorch, CPU): a small CNN over the grasp's RGB-D crop plus its parameters ->
P(success), after Levine et al. Saved as bytes (torch.save of the configuration and weights, loaded with
weights_only), so a model travels through GridFS to any back end.

Inference is deterministic: one intra-op thread and no non-deterministic kernels, so the same model and inputs
give bit-identical scores (and the same seed the same attempt).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from myriad_learning import require_torch
from myriad_learning.features import CHANNELS, CROP, VECTOR

torch = require_torch()
nn = torch.nn


def deterministic(seed: int | None = None) -> None:
    """One CPU thread and deterministic kernels (and the seed of torch's generator, when given)."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if seed is not None:
        torch.manual_seed(seed)


class GraspNet(nn.Module):
    """Three conv blocks over the crop (CHANNELS x CROP x CROP -> 32 x 4 x 4), joined with the grasp vector,
    two fully connected layers to one logit."""

    def __init__(self, width: int = 8):
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(CHANNELS, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Linear(2 * w * (CROP // 8) ** 2 + VECTOR, 64), nn.ReLU(), nn.Linear(64, 1)
        )  # fmt: skip
        self.width = width

    def forward(self, images: Any, vectors: Any) -> Any:
        return self.head(torch.cat([self.conv(images).flatten(1), vectors], 1)).squeeze(1)


class GraspModel:
    """A trained GraspNet: scores grasps' features; to and from bytes."""

    def __init__(self, net: GraspNet):
        self.net = net.eval()

    def scores(self, images: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """P(success) of each grasp (float64 array), from grasp_features' arrays."""
        deterministic()
        with torch.no_grad():
            logits = self.net(torch.from_numpy(images), torch.from_numpy(vectors))
        return torch.sigmoid(logits).double().numpy()

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({"format": 1, "width": self.net.width, "crop": CROP, "state": self.net.state_dict()}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> GraspModel:
        """ValueError naming what is wrong when `data` is not a model this code can load."""
        try:
            saved = torch.load(io.BytesIO(data), weights_only=True)
            if saved.get("format") != 1 or saved.get("crop") != CROP:
                raise ValueError(
                    f"format {saved.get('format')}, crop {saved.get('crop')} (expected 1, {CROP})"
                )
            net = GraspNet(saved["width"])
            net.load_state_dict(saved["state"])
        except Exception as exc:  # noqa: BLE001 - unpickling fails in many ways; all mean a bad file
            raise ValueError(f"not a loadable grasp model ({type(exc).__name__}: {exc})"[:300]) from None
        return cls(net)
