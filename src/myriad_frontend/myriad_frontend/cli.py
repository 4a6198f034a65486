"""The `myriad` command: collect grasps with parallel back ends, show campaign status, serve the dashboard."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from myriad_frontend.campaign import load_campaign, make_spec, parse_assignments
from myriad_frontend.collect import CrashLoop
from myriad_frontend.description import DescriptionError
from myriad_runtime import workspace
from myriad_storage.server import resolve_uri
from myriad_storage.store import StorageUnavailable, Store, mask_uri


def _store(args) -> tuple[Store, str]:
    uri, _server = resolve_uri(args.mongo_uri, workspace() / "data")
    store = Store(uri, args.database)
    store.ping()
    return store, uri


def cmd_collect(args) -> int:
    overrides = parse_assignments(args.set)
    if args.campaign:
        spec = load_campaign(args.campaign, name=args.name, seed=args.seed, attempts=args.attempts)
        if overrides:
            spec = make_spec(spec.name, spec.seed, spec.attempts, {**spec.params, **overrides}, spec.sweep)
    else:
        seed = 0 if args.seed is None else args.seed
        attempts = 20 if args.attempts is None else args.attempts
        name = args.name or f"grasp-{time.strftime('%Y%m%d-%H%M%S')}"
        spec = make_spec(name, seed, attempts, overrides)
    store, uri = _store(args)
    dashboard = None
    if args.dashboard:
        from myriad_frontend.dashboard import serve

        dashboard = serve(uri, args.database, port=args.dashboard_port)
        print(f"dashboard: {dashboard.url}", file=sys.stderr)
    print(f"campaign {spec.name}: {spec.attempts} attempts, seed {spec.seed}, {args.backends} back end(s); "
          f"storage {mask_uri(uri)} database {args.database}", file=sys.stderr)  # fmt: skip
    if args.ray:
        from myriad_frontend.ray_runner import run_ray

        result = run_ray(store, spec, uri, args.database, args.backends, Path(args.description), args.ray,
                         progress=not args.quiet)  # fmt: skip
    else:
        from myriad_frontend.collect import run_local

        result = run_local(store, spec, uri, args.database, args.backends, Path(args.description),
                           workspace() / "log" / "runs", progress=not args.quiet)  # fmt: skip
    if dashboard is not None:
        dashboard.stop()
    rate = result.done / result.seconds if result.seconds else 0.0
    print(
        f"\n{'interrupted' if result.interrupted else 'done'}: {result.done}/{result.target} attempts, "
        f"{result.successes} successes ({result.successes / max(1, result.executed):.0%} of {result.executed} "
        f"executed grasps), "
        f"{result.seconds:.1f} s, {rate:.2f} attempts/s"
        + (f", first attempt stored after {result.first_attempt_s:.1f} s" if result.first_attempt_s else "")
        + (f", restarts {result.restarts}" if any(result.restarts.values()) else "")
    )
    print(f"data: {mask_uri(uri)} database '{args.database}', collections attempts / work_items / campaigns, "
          f"images in GridFS bucket 'images'")  # fmt: skip
    print(f"query: python -c \"import pymongo; db = pymongo.MongoClient('{mask_uri(uri)}')['{args.database}']; "
          f"print(db.attempts.find_one({{'campaign': '{spec.name}'}}, {{'_id': 0, 'images': 0}}))\"")  # fmt: skip
    print(f"status: myriad status {spec.name}")
    return 130 if result.interrupted else 0


def cmd_status(args) -> int:
    store, _ = _store(args)
    names = [args.campaign] if args.campaign else [c["name"] for c in store.campaigns()]
    if not names:
        print("no campaigns")
    for name in names:
        p = store.progress(name, outcomes=True)
        print(f"{name}: {p['done']}/{p['target']} done, {p['leased']} leased, {p['pending']} pending, "
              f"{p['successes']} successes of {p['executed']} executed grasps")  # fmt: skip
        if p["outcomes"]:
            print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(p["outcomes"].items())))
        for b in store.backends(name):
            print(f"  {b['backend']}: {b.get('state', '?')}, {b.get('attempts', 0)} attempts, "
                  f"item {b.get('current_item') or '-'}, updated {b.get('updated_at')}")  # fmt: skip
    return 0


def cmd_dashboard(args) -> int:
    from myriad_frontend.dashboard import main as dashboard_main

    uri, _server = resolve_uri(args.mongo_uri, workspace() / "data")
    argv = ["--mongo-uri", uri, "--database", args.database, "--host", args.host, "--port", str(args.port)]
    return dashboard_main(argv + (["--token", args.token] if args.token else []))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="myriad", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--mongo-uri", help="MongoDB URI (default: $MYRIAD_MONGO_URI, else a local SecantusDB in data/)"
    )
    common.add_argument("--database", default="myriad")
    c = sub.add_parser("collect", parents=[common], help="collect grasp attempts with parallel back ends")
    c.add_argument("--attempts", type=int, help="number of attempts (default 20)")
    c.add_argument("--backends", type=int, default=1)
    c.add_argument(
        "--seed", type=int, help="campaign seed (default 0); same seed and parameters, same attempts"
    )
    c.add_argument("--name", help="campaign name (an existing campaign with the same items is resumed)")
    c.add_argument("--campaign", help="campaign YAML file (see config/campaigns/)")
    c.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="grasp parameter, repeatable"
    )
    c.add_argument("--description", default=str(workspace() / "config" / "backend.yaml"))
    c.add_argument("--ray", metavar="auto|ADDRESS", help="place back ends on a Ray cluster")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument(
        "--dashboard", action="store_true", help="serve the dashboard on 127.0.0.1 while collecting"
    )
    c.add_argument("--dashboard-port", type=int, default=8765)
    c.set_defaults(func=cmd_collect)
    s = sub.add_parser("status", parents=[common], help="progress of campaigns, from the database")
    s.add_argument("campaign", nargs="?")
    s.set_defaults(func=cmd_status)
    d = sub.add_parser("dashboard", parents=[common], help="web dashboard and database browser")
    d.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback needs --token")
    d.add_argument("--port", type=int, default=8765)
    d.add_argument("--token", default=os.environ.get("MYRIAD_DASHBOARD_TOKEN"))
    d.set_defaults(func=cmd_dashboard)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "backends", 1) < 1:
        print("myriad: --backends: expected a positive number", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, DescriptionError, StorageUnavailable) as exc:
        print(f"myriad: {exc}", file=sys.stderr)
        return 2
    except CrashLoop as exc:
        print(f"myriad: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
