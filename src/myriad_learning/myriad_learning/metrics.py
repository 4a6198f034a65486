"""How good a success predictor is, and how sure a success rate is (pure numpy)."""

from __future__ import annotations

import math

import numpy as np


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (the probability that a success scores above a failure, ties half); None
    without both classes."""
    y, s = np.asarray(labels, bool), np.asarray(scores, float)
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos or not neg:
        return None
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def calibration(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Brier score and expected calibration error (ECE, equal-width bins of the predicted probability)."""
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[which == b].mean() - y[which == b].mean()) * (which == b).sum() for b in range(bins)
              if (which == b).any()) / len(p)  # fmt: skip
    return {"brier": float(np.mean((p - y) ** 2)), "ece": float(ece)}


def classifier_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
    """Accuracy at 0.5, the majority class's accuracy (the bar to beat), ROC AUC, Brier, ECE, count."""
    y, p = np.asarray(labels, bool), np.asarray(probs, float)
    base = max(y.mean(), 1 - y.mean()) if len(y) else 0.0
    return {"accuracy": float(((p >= 0.5) == y).mean()), "majority": float(base), "auc": roc_auc(y, p),
            **calibration(y, p), "n": len(y), "successes": int(y.sum())}  # fmt: skip
