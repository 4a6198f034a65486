"""`myriad train` and `myriad loop`: train a grasp model on campaigns; collect -> train -> collect learned -> compare."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from myriad_frontend.campaign import MAX_ATTEMPTS, CampaignSpec, make_spec, parse_assignments
from myriad_frontend.collect import CollectResult, run_local
from myriad_frontend.description import load_description
from myriad_runtime import workspace
from myriad_storage.store import Store


def _config(args: argparse.Namespace):
    """The training options (--epochs .. --min-attempts) as a checked TrainConfig; PyTorch must be installed."""
    if args.min_attempts < 2:
        raise ValueError(f"--min-attempts: expected at least 2, got {args.min_attempts}")
    from myriad_learning import require_torch

    require_torch()  # before any work: a one-line error naming the install command
    from myriad_learning.train import TrainConfig

    config = TrainConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, validation=args.validation,
                         seed=args.train_seed)  # fmt: skip
    config.check()
    return config


def _metrics_line(m: dict) -> str:
    auc = "n/a (one class)" if m["auc"] is None else f"{m['auc']:.3f}"
    return (f"accuracy {m['accuracy']:.3f} (majority class {m['majority']:.3f}), ROC AUC {auc}, "
            f"Brier {m['brier']:.3f}, ECE {m['ece']:.3f} on {m['n']} attempts")  # fmt: skip


def train(store: Store, campaigns: list[str], args: argparse.Namespace) -> str:
    """Train on `campaigns`, store the model, print its version and metrics; returns the version."""
    config = _config(args)
    from myriad_learning.train import train_and_store

    print(f"training on {', '.join(campaigns)} ...", file=sys.stderr)
    version, r = train_and_store(store, campaigns, config, args.min_attempts)
    print(f"model {version}: {r.train_n + r.validation_n} labelled attempts (train {r.train_n}, validation "
          f"{r.validation_n}, split by seed), {config.epochs} epochs in {r.seconds:.1f} s")  # fmt: skip
    print(f"  validation: {_metrics_line(r.metrics['validation'])}")
    print(f"  training:   {_metrics_line(r.metrics['train'])}")
    print(f"use it: myriad collect --set strategy=learned --set model_version={version}")
    return version


def _collect(store: Store, uri: str, spec: CampaignSpec, args: argparse.Namespace) -> CollectResult:
    print(f"campaign {spec.name}: {spec.attempts} attempts, seed {spec.seed}, {spec.params}", file=sys.stderr)
    result = run_local(store, spec, uri, args.database, args.backends, Path(args.description),
                       workspace() / "log" / "runs", progress=not args.quiet)  # fmt: skip
    if result.failed or result.interrupted:
        raise (
            KeyboardInterrupt if result.interrupted else RuntimeError(f"campaign {spec.name}: the run failed")
        )
    return result


def _random_campaign(args: argparse.Namespace) -> CampaignSpec:
    """The loop's first campaign: --random-attempts of --random-strategy from --seed."""
    return make_spec(f"{args.name}-random", args.seed, args.random_attempts,
                     {**parse_assignments(args.set), "strategy": args.random_strategy}, where="loop")  # fmt: skip


def check_loop(args: argparse.Namespace) -> None:
    """Every option of `myriad loop`, checked before the database server starts and anything is collected: a
    ValueError naming the option (--backends is checked by the CLI)."""
    for flag, count in (
        ("--random-attempts", args.random_attempts),
        ("--learned-attempts", args.learned_attempts),
    ):
        if not 1 <= count <= MAX_ATTEMPTS:
            raise ValueError(f"{flag}: expected an integer 1..{MAX_ATTEMPTS:,}, got {count}")
    if args.min_attempts > args.random_attempts:
        raise ValueError(f"--min-attempts: expected at most --random-attempts ({args.random_attempts}, the "
                         f"attempts trained on), got {args.min_attempts}")  # fmt: skip
    if not 0 <= args.seed < 2**63 - 1:
        raise ValueError(
            f"--seed: expected an integer 0..2**63-2 (the held-out seeds are --seed + 1), got {args.seed}"
        )
    _random_campaign(args)  # --name, --set
    load_description(args.description)
    _config(args)  # --min-attempts, PyTorch, --epochs, --batch, --lr, --validation, --train-seed


def loop(store: Store, uri: str, args: argparse.Namespace) -> int:
    """Collect random attempts, train on them, collect learned and compared strategies on held-out seeds, print
    the comparison (success of executed grasps with 95 % Wilson intervals). The caller checks `args` first
    (check_loop)."""
    from myriad_learning.metrics import wilson

    sets = parse_assignments(args.set)
    random = _random_campaign(args)
    rows = [(random.name, args.random_strategy, _collect(store, uri, random, args))]
    version = train(store, [random.name], args)
    held_out = args.seed + 1
    for strategy in ["learned", *args.compare]:
        params = {
            **sets,
            "strategy": strategy,
            **({"model_version": version} if strategy == "learned" else {}),
        }
        name = f"{args.name}-{strategy}" + (f"-{version}" if strategy == "learned" else "")
        spec = make_spec(name, held_out, args.learned_attempts, params, where="loop")
        rows.append((name, strategy + (f" {version}" if strategy == "learned" else ""),
                     _collect(store, uri, spec, args)))  # fmt: skip
    print(f"\n{'campaign':<28}{'strategy':<14}{'success of executed grasps':>36}   attempts")
    for name, label, r in rows:
        lo, hi = wilson(r.successes, r.executed)
        print(f"{name:<28}{label:<14}{r.successes:>8}/{r.executed:<6}= {r.successes / max(1, r.executed):6.1%} "
              f"[{lo:.1%}-{hi:.1%}]   {r.done}")  # fmt: skip
    print(f"held-out seeds: campaign seed {held_out} for every strategy after the first")
    return 0
