"""Checks the front end makes before and after starting back ends: worlds that build, the error a back end died of."""

from __future__ import annotations

import contextlib
import os
import sys

from myriad_frontend.campaign import CampaignSpec
from myriad_frontend.description import Description
from myriad_storage.store import Store


def check_worlds(desc: Description, values: dict[str, str]) -> None:
    """Build every world the back ends' nodes name (their `world_file` parameters) once, here, so that a bad
    world, robot file or joint name is one clear error before any process starts (ValueError)."""
    from myriad_sim.spec import load_world

    rendered = desc.render(index=0, backend="b0", run_dir="", **values)
    worlds = {p["ros__parameters"].get("world_file") for p in rendered.parameters.values()} - {None, ""}
    for path in sorted(worlds):
        spec = load_world(path)  # SpecError (a ValueError) names the file and field
        try:
            with _stderr_muted():  # PyBullet prints its build time on import, and warnings while loading
                from myriad_sim.world import World

                World(spec, renderer="tiny").close()
        except Exception as exc:  # noqa: BLE001 - PyBullet and the robot lookup fail in many ways
            raise ValueError(f"world {path}: cannot be built: {exc}") from None


@contextlib.contextmanager
def _stderr_muted():
    """File descriptor 2 to /dev/null (C libraries write to it directly)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def check_models(store: Store, spec: CampaignSpec) -> None:
    """Load every model a `learned` campaign names, here, so that an unknown version, a corrupt file or a missing
    PyTorch is one clear error (ValueError) before any back end starts."""
    strategies = spec.sweep.get("strategy", [spec.params.get("strategy", "object")])
    if "learned" not in strategies:
        return
    from myriad_learning.registry import ModelRegistry

    registry = ModelRegistry(store)
    for version in spec.sweep.get("model_version", [spec.params.get("model_version", "")]):
        registry.load(version)
