"""The grasp model at inference (numpy only: back ends need no PyTorch): the trained GraspNet's forward pass
over weights stored as an .npz file (no pickle), P(success) per grasp. Deterministic: the same weights and
inputs give the same scores, so the same model and seed give the same attempt."""

from __future__ import annotations

import io

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from myriad_learning.features import CHANNELS, CROP, VECTOR

FORMAT = 2  # of the stored file: conv{0,1,2}.{weight,bias}, fc{0,1}.{weight,bias}, format, crop
LAYERS = ("conv0", "conv1", "conv2", "fc0", "fc1")


def _conv_relu_pool(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 convolution (padding 1), ReLU, 2x2 max pooling of (N, C, H, W)."""
    n, c, h, wd = x.shape
    cols = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * wd, c * 9)
    y = np.maximum(cols @ w.reshape(len(w), -1).T + b, 0).reshape(n, h, wd, len(w)).transpose(0, 3, 1, 2)
    return y.reshape(n, len(w), h // 2, 2, wd // 2, 2).max(axis=(3, 5))


class GraspModel:
    """Stored grasp-model weights and their forward pass."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = {k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()}

    def scores(self, images: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """P(success) of each grasp (float64), from grasp_features' arrays."""
        x = np.asarray(images, np.float32)
        for k in range(3):
            x = _conv_relu_pool(x, self.w[f"conv{k}.weight"], self.w[f"conv{k}.bias"])
        h = np.concatenate([x.reshape(len(x), -1), np.asarray(vectors, np.float32)], axis=1)
        h = np.maximum(h @ self.w["fc0.weight"].T + self.w["fc0.bias"], 0)
        logit = (h @ self.w["fc1.weight"].T + self.w["fc1.bias"])[:, 0].astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logit))

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, format=np.int64(FORMAT), crop=np.int64(CROP), **self.w)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> GraspModel:
        """ValueError naming what is wrong when `data` is not a model this code can use."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except Exception as exc:  # noqa: BLE001 - a damaged archive fails in many ways; all mean a bad file
            raise ValueError(f"not a loadable grasp model ({type(exc).__name__}: {exc})"[:300]) from None
        if arrays.get("format") != FORMAT or arrays.get("crop") != CROP:
            raise ValueError(f"not a grasp model of this version (format {arrays.get('format')}, crop "
                             f"{arrays.get('crop')}; expected {FORMAT}, {CROP})")  # fmt: skip
        weights = {k: v for k, v in arrays.items() if k not in ("format", "crop")}
        need = {f"{layer}.{p}" for layer in LAYERS for p in ("weight", "bias")}
        if set(weights) != need:
            raise ValueError(f"not a grasp model: arrays {sorted(weights)}, expected {sorted(need)}")
        conv0, fc0 = weights["conv0.weight"], weights["fc0.weight"]
        if (
            conv0.shape[1:] != (CHANNELS, 3, 3)
            or fc0.shape[1] != weights["conv2.weight"].shape[0] * (CROP // 8) ** 2 + VECTOR
        ):
            raise ValueError(
                f"not a grasp model: layer shapes {conv0.shape}, {fc0.shape} do not fit the inputs"
            )
        return cls(weights)
