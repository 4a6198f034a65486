"""What launch/backends.launch.py needs beyond launch itself, testable without launch: its arguments, the run
it starts (the same as `myriad collect`'s: myriad_frontend.run), and how it ends."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from myriad_frontend.campaign import parse_assignments, spec_from_options
from myriad_frontend.checks import check_models
from myriad_frontend.description import load_description
from myriad_frontend.plan import ProcessPlan
from myriad_frontend.run import Run, open_run
from myriad_runtime import workspace
from myriad_storage.server import resolve_uri
from myriad_storage.store import Store, mask_uri

RESPAWN_DELAY_S = 1.0

# The launch arguments: name -> (default, description).
ARGUMENTS = {
    "backends": ("1", "number of back ends"),
    "description": (str(workspace() / "config" / "backend.yaml"), "back-end description"),
    "database": ("myriad", "database name"),
    "mongo_uri": ("", "MongoDB URI (default: $MYRIAD_MONGO_URI, else the workspace's local SecantusDB)"),
    "campaign": ("", "campaign name (an existing campaign with the same items is resumed)"),
    "campaign_file": ("", "campaign YAML file (see config/campaigns/)"),
    "attempts": ("", "number of attempts (default 20)"),
    "seed": ("", "campaign seed (default 0)"),
    "set": ("", "grasp parameters, space-separated KEY=VALUE"),
    "record": ("", "record each back end's topics as MCAP files in this directory"),
    "keep_running": ("false", "keep the back ends running after the campaign is complete"),
}


@dataclass(frozen=True)
class LaunchArgs:
    """The launch arguments, parsed and checked (errors name the argument)."""

    backends: int
    description: Path
    database: str
    mongo_uri: str | None
    campaign: str | None
    campaign_file: str | None
    attempts: int | None
    seed: int | None
    overrides: dict
    record: Path | None
    keep_running: bool

    @classmethod
    def parse(cls, given: dict[str, str]) -> LaunchArgs:
        """From launch argument values (strings, as `ros2 launch ... name:=value` gives them); defaults for
        the ones not given."""
        raw = {k: default for k, (default, _doc) in ARGUMENTS.items()} | given
        backends = _int(raw, "backends")
        if backends is None or backends < 1:
            raise ValueError(
                f"launch argument backends: expected a positive integer, got {raw['backends']!r}"
            )
        keep = raw.get("keep_running", "false").strip().lower()
        if keep not in ("true", "false"):
            raise ValueError(f"launch argument keep_running: expected true or false, got {keep!r}")
        return cls(
            backends=backends,
            description=Path(raw["description"]),
            database=raw["database"],
            mongo_uri=raw.get("mongo_uri") or None,
            campaign=raw.get("campaign") or None,
            campaign_file=raw.get("campaign_file") or None,
            attempts=_int(raw, "attempts"),
            seed=_int(raw, "seed"),
            overrides=parse_assignments(raw.get("set", "").split()),
            record=Path(raw["record"]) if raw.get("record") else None,
            keep_running=keep == "true",
        )


def _int(raw: dict[str, str], name: str) -> int | None:
    value = raw.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"launch argument {name}: expected an integer, got {value!r}") from None


def start_run(args: LaunchArgs, python: str = sys.executable) -> tuple[Run, list[ProcessPlan], str]:
    """Create or resume the campaign, hold its run directory and DDS domain ($ROS_DOMAIN_ID, default 0: the
    launch runs where the user's ROS 2 tools look), and plan every back end. Returns the run, the processes to
    start and a summary line for the log."""
    spec = spec_from_options(args.campaign_file, args.campaign, args.seed, args.attempts, args.overrides)
    desc = load_description(args.description)
    if args.record is not None:
        desc = desc.with_recorder(args.record)
    uri, _server = resolve_uri(args.mongo_uri, workspace() / "data")
    store = Store(uri, args.database)
    store.ping()
    check_models(store, spec)  # as `myriad collect` does: an unknown model is one error, not dying back ends
    run = open_run(store, spec, uri, args.database, workspace() / "log" / "runs",
                   os.environ.get("ROS_DOMAIN_ID", "0"))  # fmt: skip
    try:
        plans = [plan for i in range(args.backends) for plan in run.plan(desc, i, python)]
    except BaseException:
        run.close()
        raise
    summary = (
        f"campaign {spec.name}: {spec.attempts} attempts, seed {spec.seed}, {args.backends} back end(s), "
        f"ROS_DOMAIN_ID {run.domain.domain_id}; storage {mask_uri(uri)} database {args.database}; "
        f"logs and parameter files in {run.run_dir}"
    )
    return run, plans, summary


def wait_command(run: Run, python: str = sys.executable) -> list[str]:
    """The watcher process: shows progress and exits 0 once the campaign is complete."""
    return [python, "-m", "myriad_frontend.cli", "wait", run.spec.name, "--database", run.database]


def campaign_complete(run: Run, returncode: int) -> str:
    """The shutdown reason once the watcher has exited; raises if it failed (the launch then exits non-zero)."""
    if returncode != 0:
        raise RuntimeError(f"the campaign watcher of {run.spec.name!r} failed (exit {returncode})")
    return f"campaign {run.spec.name} complete"
