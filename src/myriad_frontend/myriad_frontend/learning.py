"""`myriad train` and `myriad loop`: train a grasp model on campaigns; collect -> train -> collect learned -> compare."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from myriad_frontend.campaign import CampaignSpec, make_spec, parse_assignments
from myriad_frontend.collect import CollectResult, run_local
from myriad_runtime import workspace
from myriad_storage.store import Store


def _config(args: argparse.Namespace):
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
    if args.min_attempts < 2:
        raise ValueError(f"--min-attempts: expected at least 2, got {args.min_attempts}")
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


def loop(store: Store, uri: str, args: argparse.Namespace) -> int:
    """Collect random attempts, train on them, collect learned and compared strategies on held-out seeds, print
    the comparison (success of executed grasps with 95 % Wilson intervals)."""
    from myriad_learning.metrics import wilson

    _config(args)
    sets = parse_assignments(args.set)
    if args.backends < 1:
        raise ValueError(f"--backends: expected a positive number, got {args.backends}")
    random = make_spec(f"{args.name}-random", args.seed, args.random_attempts,
                       {**sets, "strategy": args.random_strategy}, where="loop")  # fmt: skip
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
