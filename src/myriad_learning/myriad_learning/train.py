"""Training the grasp model on stored campaigns: split by seed, fit, measure on the held-out seeds, store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from myriad_learning.data import MIN_ATTEMPTS, Examples, load_examples, validation_mask
from myriad_learning.inference import GraspModel
from myriad_learning.metrics import classifier_metrics
from myriad_learning.model import GraspNet, deterministic, torch
from myriad_learning.registry import ModelRegistry
from myriad_storage.store import Store


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    width: int = 8
    validation: float = 0.2  # fraction of seeds held out
    seed: int = 0

    def check(self) -> None:
        """ValueError naming the option that is out of range."""
        for name, ok, expected in (
            ("epochs", 1 <= self.epochs <= 10_000, "1..10000"),
            ("batch", 1 <= self.batch <= 65_536, "1..65536"),
            ("lr", 0 < self.lr <= 1, "a number in (0, 1]"),
            ("validation", 0 < self.validation < 1, "a fraction in (0, 1)"),
            ("seed", 0 <= self.seed < 2**63, "0..2**63-1"),
        ):
            if not ok:
                raise ValueError(f"--{name}: expected {expected}, got {getattr(self, name)!r}")


@dataclass
class TrainResult:
    model: GraspModel
    metrics: dict[str, Any]  # validation metrics (classifier_metrics) and the training set's
    train_n: int
    validation_n: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch


def fit(ex: Examples, config: TrainConfig) -> TrainResult:
    """Train a GraspNet on the examples outside the validation seeds; metrics on both sides."""
    config.check()
    t0 = time.perf_counter()
    held = validation_mask(ex.seeds, config.validation)
    if held.all() or not held.any():
        raise ValueError(
            f"{len(ex.seeds)} attempts: too few seeds to hold {config.validation:.0%} out for validation"
        )
    train = ~held
    deterministic(config.seed)
    net = GraspNet(config.width)
    images, vectors = torch.from_numpy(ex.images[train]), torch.from_numpy(ex.vectors[train])
    labels = torch.from_numpy(ex.labels[train].astype(np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(config.seed)
    losses = []
    for _ in range(config.epochs):
        net.train()
        order, total = torch.randperm(len(labels), generator=gen), 0.0
        for k in range(0, len(order), config.batch):
            idx = order[k : k + config.batch]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # the gripper is symmetric: a mirrored crop too
            batch = torch.where(flip[:, None, None, None], images[idx].flip(2), images[idx])
            loss = loss_fn(net(batch, vectors[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(labels))
    model = net.eval().deployed()  # measured as the back ends will run it
    metrics = {
        "validation": classifier_metrics(ex.labels[held], model.scores(ex.images[held], ex.vectors[held])),
        "train": classifier_metrics(ex.labels[train], model.scores(ex.images[train], ex.vectors[train])),
    }
    return TrainResult(model, metrics, int(train.sum()), int(held.sum()), time.perf_counter() - t0, losses)


def train_and_store(store: Store, campaigns: list[str], config: TrainConfig,
                    min_attempts: int = MIN_ATTEMPTS) -> tuple[str, TrainResult]:  # fmt: skip
    """Train on `campaigns` and store the model; returns (its version, the result)."""
    config.check()
    ex = load_examples(store, campaigns, min_attempts)
    result = fit(ex, config)
    info = {
        "campaigns": campaigns, "attempts": len(ex.labels), "successes": int(ex.labels.sum()),
        "skipped": ex.skipped, "train": result.train_n, "validation": result.validation_n,
        "metrics": result.metrics, "config": vars(config), "seconds": round(result.seconds, 2),
        "losses": [round(v, 5) for v in result.losses],
    }  # fmt: skip
    return ModelRegistry(store).save(result.model.to_bytes(), info), result
