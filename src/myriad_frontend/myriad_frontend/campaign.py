"""Campaigns: named sets of work items (parameter sets with seeds), from a YAML file or CLI options."""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from myriad_grasping.sampling import GraspParams


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    seed: int
    attempts: int
    params: dict[str, Any]
    sweep: dict[str, list[Any]]

    def items(self) -> list[dict[str, Any]]:
        """One work item per attempt: the base parameters, the sweep combination in turn, a derived seed."""
        combos = [dict(zip(self.sweep, values)) for values in itertools.product(*self.sweep.values())] or [{}]
        return [
            {**self.params, **combos[i % len(combos)], "seed": item_seed(self.seed, i)}
            for i in range(self.attempts)
        ]


def item_seed(campaign_seed: int, index: int) -> int:
    """The seed of work item `index`: stable across runs, machines and back ends (63 bits)."""
    digest = hashlib.sha256(f"myriad:{campaign_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def make_spec(name: str, seed: int, attempts: int, params: dict[str, Any], sweep: dict[str, list] | None = None,
              where: str = "campaign") -> CampaignSpec:  # fmt: skip
    """Validate and build a campaign; every item's parameters are checked before anything is stored."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{where}.name: expected a non-empty name without '/', got {name!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{where}.seed: expected a non-negative integer, got {seed!r}")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ValueError(f"{where}.attempts: expected a positive integer, got {attempts!r}")
    sweep = sweep or {}
    if not isinstance(params, dict):
        raise ValueError(f"{where}.params: expected a mapping of grasp parameters, got {params!r}")
    if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
        raise ValueError(
            f"{where}.sweep: expected a mapping of parameter name to a non-empty list, got {sweep!r}"
        )
    spec = CampaignSpec(name, seed, attempts, dict(params), dict(sweep))
    for combo in spec.items()[: max(1, len(list(itertools.product(*sweep.values()))))]:
        GraspParams.from_dict(combo, f"{where}.params")
    return spec


def load_campaign(path: Path | str, **overrides: Any) -> CampaignSpec:
    """Read a campaign YAML file: name, seed, attempts, params, sweep. CLI options override its fields."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: campaign file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with name, seed, attempts, params, sweep")
    unknown = sorted(set(data) - {"name", "seed", "attempts", "params", "sweep"})
    if unknown:
        raise ValueError(f"{path}: unknown fields {unknown}; expected name, seed, attempts, params, sweep")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return make_spec(
        data.get("name", path.stem), data.get("seed", 0), data.get("attempts", 10),
        data.get("params", {}) or {}, data.get("sweep"), where=str(path),
    )  # fmt: skip


def spec_from_options(
    campaign_file: str | Path | None,
    name: str | None,
    seed: int | None,
    attempts: int | None,
    overrides: dict[str, Any],
) -> CampaignSpec:
    """The campaign of `myriad collect` and of the launch file: a campaign file with options overriding its
    fields, or the options alone (defaults: 20 attempts, seed 0, a timestamped name)."""
    if campaign_file:
        spec = load_campaign(campaign_file, name=name, seed=seed, attempts=attempts)
        if overrides:
            spec = make_spec(spec.name, spec.seed, spec.attempts, {**spec.params, **overrides}, spec.sweep)
        return spec
    return make_spec(
        name or f"grasp-{time.strftime('%Y%m%d-%H%M%S')}",
        0 if seed is None else seed,
        20 if attempts is None else attempts,
        overrides,
    )


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """`key=value` options (values parsed as YAML scalars) into a dict."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected key=value")
        out[key] = yaml.safe_load(value)
    return out
