"""The learning loop: a grasp-success model trained on stored attempts, versioned in the database, and the
`learned` grasp strategy that scores candidate grasps with it. PyTorch is optional and needed for training only
(modules model and train import it, through require_torch); the back ends run stored models with numpy."""

from __future__ import annotations

from typing import Any

INSTALL_HINT = "pip install -r requirements-learn.txt (or scripts/setup.sh --learn)"


class TorchMissing(ValueError):
    """PyTorch is not installed: the learning loop is an optional part."""


def require_torch() -> Any:
    """The torch module; TorchMissing with the install command when it is not installed."""
    try:
        import torch
    except ImportError:
        raise TorchMissing(
            f"training a grasp model needs PyTorch, which is not installed: {INSTALL_HINT}"
        ) from None
    return torch
