"""The `myriad` command: collect grasps with parallel back ends, show status, export datasets, serve the dashboard,
train a grasp model and run the learning loop.

Exit codes: 0 done, 1 run failure (a back end crash-looping, an internal error), 2 usage or bad input (options,
campaign/description/world files, ports), 3 storage unavailable or credentials refused, 130 interrupted.
Errors are one line; --debug adds the traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from myriad_frontend.campaign import CampaignSpec, parse_assignments, spec_from_options
from myriad_frontend.checks import check_models
from myriad_frontend.collect import CollectResult, finish, watch
from myriad_frontend.description import load_description
from myriad_frontend.processes import stop_on_signals
from myriad_frontend.run import CrashLoop
from myriad_runtime import workspace
from myriad_runtime.isolation import IsolationError
from myriad_storage.server import ServerError, resolve_uri
from myriad_storage.store import StorageAuthError, StorageUnavailable, Store, check_database_name, mask_uri

EXIT_RUN, EXIT_USAGE, EXIT_STORAGE, EXIT_INTERRUPTED = 1, 2, 3, 130
MB_PER_BACKEND = 400  # measured ≈ 330-430 MB resident per local back end
# rmw_fastrtps with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST probes the first 32 participant numbers of a domain
# on this host: two participants numbered 32 or higher never discover each other (measured: a 41st process does
# not see a 42nd). Each local back end is one participant of the run's domain.
LOCALHOST_DISCOVERY_PARTICIPANTS = 32


def _store(args: argparse.Namespace) -> tuple[Store, str]:
    check_database_name(args.database)  # before any server starts
    uri, _server = resolve_uri(args.mongo_uri, workspace() / "data", args.db_port)
    store = Store(uri, args.database)
    store.ping()
    return store, uri


def local_capacity() -> int:
    """How many back ends this machine hosts: 2 per CPU core, and MB_PER_BACKEND of available memory each."""
    import psutil

    by_memory = psutil.virtual_memory().available // (MB_PER_BACKEND * 2**20)
    return max(1, min(2 * (os.cpu_count() or 1), by_memory))


def discovery_warning(backends: int) -> str:
    """A warning when a local run has more back ends than a ROS 2 tool started beside them can discover."""
    if backends < LOCALHOST_DISCOVERY_PARTICIPANTS:
        return ""
    return (
        f"warning: {backends} back ends in one ROS 2 domain on this host: a ROS 2 tool started beside them (rviz2, "
        f"ros2 node list) discovers only those among the first {LOCALHOST_DISCOVERY_PARTICIPANTS} DDS participants "
        "of the domain (collection is not affected); use --ray to give each back end its own domain"
    )


def cmd_collect(args: argparse.Namespace) -> int:
    spec = spec_from_options(args.campaign, args.name, args.seed, args.attempts, parse_assignments(args.set))
    if args.ray and args.record:
        raise ValueError(
            "--record: not with --ray yet (each node would record on its own host); record locally"
        )
    if not args.ray and not args.force and args.backends > local_capacity():
        raise ValueError(
            f"--backends {args.backends}: this machine hosts at most {local_capacity()} (2 per CPU core and "
            f"{MB_PER_BACKEND} MB of available memory each); --force to start them anyway"
        )
    warning = "" if args.ray else discovery_warning(args.backends)
    if warning:
        print(warning, file=sys.stderr)
    load_description(args.description, check_packages=not args.ray)  # before any server starts
    store, uri = _store(args)
    check_models(store, spec)
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
                         progress=not args.quiet, force=args.force)  # fmt: skip
    else:
        from myriad_frontend.collect import run_local

        result = run_local(store, spec, uri, args.database, args.backends, Path(args.description),
                           workspace() / "log" / "runs", progress=not args.quiet, record=args.record)  # fmt: skip
    if dashboard is not None:
        dashboard.stop()
    rate = result.done / result.seconds if result.seconds else 0.0
    print(
        f"\n{'failed' if result.failed else 'interrupted' if result.interrupted else 'done'}: "
        f"{result.done}/{result.target} attempts, "
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
    return EXIT_RUN if result.failed else EXIT_INTERRUPTED if result.interrupted else 0


def cmd_status(args: argparse.Namespace) -> int:
    store, _ = _store(args)
    names = [args.campaign] if args.campaign else [c["name"] for c in store.campaigns()]
    if args.campaign and store.campaign(args.campaign) is None:
        known = [c["name"] for c in store.campaigns(limit=20)]
        print(f"myriad: no campaign named {args.campaign!r} in database '{args.database}'; known: "
              f"{', '.join(known) or 'none'}", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if not names:
        print("no campaigns")
    for name in names:
        p = store.progress(name, outcomes=True)
        print(f"{name}: {p['done']}/{p['target']} done, {p['leased']} leased, {p['pending']} pending, "
              f"{p['successes']} successes of {p['executed']} executed grasps")  # fmt: skip
        if p["outcomes"]:
            print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(p["outcomes"].items())))
        if p["strategies"]:
            print(
                "  strategies: " + ", ".join(strategy_line(k, v) for k, v in sorted(p["strategies"].items()))
            )
        t = store.phase_times(name)
        if t["attempts"]:
            print("  time per attempt: " + ", ".join(f"{k} {v:.3f} s" for k, v in t["phases"].items())
                  + f" (mean wall time of {t['attempts']} attempts)")  # fmt: skip
        for b in store.backends(name):
            updated = b.get("updated_at")
            print(f"  {b['backend']}: {b.get('state', '?')}, {b.get('attempts', 0)} attempts, "
                  f"item {b.get('current_item') or '-'}, "
                  f"updated {f'{updated:%Y-%m-%d %H:%M:%S} UTC' if updated else '-'}")  # fmt: skip
    if not args.campaign and store.count_campaigns() > len(names):
        print(f"... and {store.count_campaigns() - len(names)} more campaigns (name one to see it)")
    return 0


def strategy_line(strategy: str, counts: dict) -> str:
    """`object 45/50 (90.0 % [78.6-95.7])`: successes of executed grasps with a 95 % Wilson interval."""
    from myriad_learning.metrics import wilson

    k, n = counts["successes"], counts["executed"]
    if n == 0:
        return f"{strategy} 0/0"
    lo, hi = wilson(k, n)
    return f"{strategy} {k}/{n} ({100 * k / n:.1f} % [{100 * lo:.1f}-{100 * hi:.1f}])"


def cmd_wait(args: argparse.Namespace) -> int:
    """Show a campaign's progress until it is complete (what the launch file runs to end the launch)."""
    store, _ = _store(args)
    doc = store.campaign(args.campaign)
    if doc is None:
        raise ValueError(f"no campaign named {args.campaign!r} in database {args.database!r}")
    spec = CampaignSpec(args.campaign, doc.get("seed") or 0, doc["target"], {}, {})
    start = time.monotonic()
    result = CollectResult(spec.name, spec.attempts, 0, 0, 0.0, None)
    try:
        watch(store, spec, result, start, 0, lambda _bar: None, lambda: 0, progress=not args.quiet)
    except KeyboardInterrupt:  # a viewer: stopping it is not a failure (the launch stops it this way)
        return 0
    finish(store, result, start, {})
    print(
        f"campaign {spec.name} complete: {result.done}/{result.target} attempts, {result.successes} successes"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from myriad_storage.export import export

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise ValueError(
                f"--since: expected an ISO time like 2026-12-01T18:00:00+00:00, got {args.since!r}"
            ) from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    store, _ = _store(args)
    r = export(store, args.campaign, args.format, args.out, only_success=args.only_success, since=since,
               overwrite=args.overwrite, shard_rows=args.shard_size, progress=not args.quiet)  # fmt: skip
    print(
        f"exported {r.attempts} attempts ({r.frames} rows/frames, {r.shards} file(s)"
        + (f", {r.resumed_shards} resumed" if r.resumed_shards else "")
        + f") as {args.format} to {r.out}"
    )
    if r.note:
        print(f"note: {r.note}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from myriad_frontend.learning import train

    store, _ = _store(args)
    train(store, args.campaigns, args)
    return 0


def cmd_loop(args: argparse.Namespace) -> int:
    from myriad_frontend.learning import check_loop, loop

    check_loop(args)  # before any server starts
    store, uri = _store(args)
    return loop(store, uri, args)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from myriad_frontend.dashboard import main as dashboard_main

    uri, _server = resolve_uri(args.mongo_uri, workspace() / "data", args.db_port)
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
    common.add_argument(
        "--db-port",
        type=int,
        help="port of the local database server (default: $MYRIAD_DB_PORT, else one per workspace)",
    )
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    c = sub.add_parser("collect", parents=[common], help="collect grasp attempts with parallel back ends")
    c.add_argument("--attempts", type=int, help="number of attempts (default 20)")
    c.add_argument("--backends", type=int, default=1)
    c.add_argument(
        "--force", action="store_true", help="start more back ends than the machine or cluster hosts"
    )
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
    c.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record each back end's topics as MCAP (rosbag2) files in DIR",
    )
    c.set_defaults(func=cmd_collect)
    s = sub.add_parser("status", parents=[common], help="progress of campaigns, from the database")
    s.add_argument("campaign", nargs="?")
    s.set_defaults(func=cmd_status)
    w = sub.add_parser("wait", parents=[common], help="show a campaign's progress until it is complete")
    w.add_argument("campaign")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.set_defaults(func=cmd_wait)
    e = sub.add_parser("export", parents=[common], help="export a campaign as a LeRobot or Parquet dataset")
    e.add_argument("campaign")
    e.add_argument("--format", required=True, choices=["lerobot", "parquet"])
    e.add_argument("--out", required=True, type=Path, metavar="DIR")
    e.add_argument("--only-success", action="store_true", help="successful attempts only")
    e.add_argument(
        "--since", metavar="ISO-TIME", help="attempts stored at or after this time (UTC if no zone)"
    )
    e.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    e.add_argument("--shard-size", type=int, default=500, help="attempts per Parquet file (default 500)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_export)
    t = sub.add_parser(
        "train", parents=[common], help="train a grasp-success model on campaigns and store it"
    )
    t.add_argument("campaigns", nargs="+", metavar="CAMPAIGN")
    train_options(t)
    t.set_defaults(func=cmd_train)
    lp = sub.add_parser(
        "loop", parents=[common], help="collect random grasps, train, collect learned ones, compare"
    )
    lp.add_argument("--name", default="loop", help="campaign name prefix (default loop)")
    lp.add_argument("--random-attempts", type=int, default=1000, help="random attempts to train on")
    lp.add_argument("--learned-attempts", type=int, default=200, help="attempts per compared strategy")
    lp.add_argument("--random-strategy", default="uniform", choices=["uniform", "object"])
    lp.add_argument("--compare", nargs="*", default=["object"], choices=["object", "uniform"],
                    help="strategies run on the learned one's held-out seeds (default object)")  # fmt: skip
    lp.add_argument("--backends", type=int, default=1)
    lp.add_argument("--seed", type=int, default=0, help="campaign seed of the random attempts (held out: +1)")
    lp.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="grasp parameter, all phases"
    )
    lp.add_argument("--description", default=str(workspace() / "config" / "backend.yaml"))
    lp.add_argument("--quiet", action="store_true", help="no progress bars")
    train_options(lp)
    lp.set_defaults(func=cmd_loop)
    d = sub.add_parser("dashboard", parents=[common], help="web dashboard and database browser")
    d.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback needs --token")
    d.add_argument("--port", type=int, default=8765)
    d.add_argument("--token", default=os.environ.get("MYRIAD_DASHBOARD_TOKEN"))
    d.set_defaults(func=cmd_dashboard)
    return ap


def train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (Adam)")
    p.add_argument("--validation", type=float, default=0.2, help="fraction of seeds held out (default 0.2)")
    p.add_argument("--train-seed", type=int, default=0, help="seed of the weights and batches")
    p.add_argument("--min-attempts", type=int, default=20, help="fewest labelled attempts to train on")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "backends", 1) < 1:
        print("myriad: --backends: expected a positive number", file=sys.stderr)
        return 2
    # SIGINT and SIGTERM stop a run: back ends stopped, leases released, summary.
    stop_on_signals()
    # A run lasts hours: its status lines reach a log file or a pipe as they are written.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("myriad: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        code = exit_code(exc)
        text = " ".join(str(exc).split()) or type(exc).__name__
        if code == EXIT_RUN and not isinstance(exc, CrashLoop):
            text = f"internal error ({type(exc).__name__}): {text}" + (
                "" if args.debug else " (--debug: traceback)"
            )
        print(f"myriad: {text}", file=sys.stderr)
        return code
    finally:  # the work is done: a late Ctrl-C must not interrupt the interpreter's exit (pymongo's atexit)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def exit_code(exc: BaseException) -> int:
    """The exit code of an error: what class of failure it is (see the module docstring)."""
    if isinstance(exc, (StorageUnavailable, StorageAuthError, ServerError)):
        return EXIT_STORAGE
    if isinstance(exc, (ValueError, IsolationError)):  # DescriptionError and myriad_sim's SpecError too
        return EXIT_USAGE
    return EXIT_RUN


if __name__ == "__main__":
    sys.exit(main())
