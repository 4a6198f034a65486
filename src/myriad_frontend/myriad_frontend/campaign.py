"""Campaigns: named sets of work items (parameter sets with seeds), from a YAML file or CLI options."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from myriad_grasping.sampling import GraspParams
from myriad_sim.config import is_int

# Work items are written to the database up front (≈10k items/s on SecantusDB) and progress counts scan them:
# larger collections are split into several campaigns.
MAX_ATTEMPTS = 1_000_000


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    seed: int
    attempts: int
    params: dict[str, Any]
    sweep: dict[str, list[Any]]

    def items(self) -> Iterator[dict[str, Any]]:
        """One work item per attempt, made on demand: the base parameters, the sweep combination in turn
        (item i takes combination i mod their count, in itertools.product order), a derived seed."""
        combos = itertools.cycle(itertools.product(*self.sweep.values()))
        for i, values in zip(range(self.attempts), combos):
            yield {**self.params, **dict(zip(self.sweep, values)), "seed": item_seed(self.seed, i)}


def item_seed(campaign_seed: int, index: int) -> int:
    """The seed of work item `index`: stable across runs, machines and back ends (63 bits)."""
    digest = hashlib.sha256(f"myriad:{campaign_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def make_spec(name: str, seed: int, attempts: int, params: dict[str, Any], sweep: dict[str, list] | None = None,
              where: str = "campaign") -> CampaignSpec:  # fmt: skip
    """Validate and build a campaign; every item's parameters are checked before anything is stored."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{where}.name: expected a non-empty name without '/', got {name!r}")
    if not is_int(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"{where}.seed: expected an integer 0..2**63-1, got {seed!r}")
    if not is_int(attempts) or not 1 <= attempts <= MAX_ATTEMPTS:
        raise ValueError(
            f"{where}.attempts: expected an integer 1..{MAX_ATTEMPTS:,} (every work item is stored up front; "
            f"split larger collections into several campaigns), got {attempts!r}"
        )
    sweep = sweep or {}
    if not isinstance(params, dict):
        raise ValueError(f"{where}.params: expected a mapping of grasp parameters, got {params!r}")
    if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
        raise ValueError(
            f"{where}.sweep: expected a mapping of parameter name to a non-empty list, got {sweep!r}"
        )
    if "seed" in params or "seed" in sweep:
        raise ValueError(
            f"{where}: 'seed' is not a grasp parameter; set the campaign seed (--seed or 'seed:')"
        )
    GraspParams.from_dict(params, f"{where}.params")
    coupled = [k for k in ("strategy", "model_version") if k in sweep]  # 'learned' needs a model_version
    for key, values in sweep.items():  # each other field on its own: every combination is valid then
        for v in values if key not in coupled else ():
            GraspParams.from_dict({**params, key: v}, f"{where}.sweep")
    for combination in itertools.product(*(sweep[k] for k in coupled)):  # the coupled ones together
        GraspParams.from_dict({**params, **dict(zip(coupled, combination))}, f"{where}.sweep")
    return CampaignSpec(name, seed, attempts, dict(params), dict(sweep))


def load_campaign(path: Path | str, **overrides: Any) -> CampaignSpec:
    """Read a campaign YAML file: name, seed, attempts, params, sweep. CLI options override its fields."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: campaign file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file; expected a campaign YAML file") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: malformed YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        raise ValueError(f"{path}: the file is empty; expected a mapping with at least 'attempts' (and name, seed, "
                         f"params, sweep)")  # fmt: skip
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with name, seed, attempts, params, sweep")
    unknown = sorted(set(data) - {"name", "seed", "attempts", "params", "sweep"})
    if unknown:
        raise ValueError(f"{path}: unknown fields {unknown}; expected name, seed, attempts, params, sweep")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "attempts" not in data:
        raise ValueError(
            f"{path}: no 'attempts' (and no --attempts): how many attempts should the campaign make?"
        )
    return make_spec(
        data.get("name", path.stem), data.get("seed", 0), data["attempts"],
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
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"--set {pair!r}: the value is not a valid YAML scalar") from None
    return out
