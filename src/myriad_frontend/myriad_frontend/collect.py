"""`myriad collect`: create a campaign, run back ends until every work item is done, watch and restart them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from myriad_frontend.campaign import CampaignSpec
from myriad_frontend.description import load_description
from myriad_frontend.processes import LocalBackend, clean_shared_memory, make_backends
from myriad_runtime import workspace
from myriad_storage.store import StorageUnavailable, Store


@dataclass
class CollectResult:
    campaign: str
    target: int
    done: int
    successes: int
    seconds: float
    first_attempt_s: float | None
    restarts: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    executed: int = 0  # attempts that executed a grasp (the label's denominator)


MAX_CRASH_STREAK = 5


def release_leases(store: Store, campaign: str, backend: str) -> int:
    """Hand the items a dead back end held back to the pool at once (instead of waiting for lease expiry)."""
    return sum(
        store.release(item["item_id"], backend)
        for item in store.work_items(campaign, state="leased")
        if item.get("lease_owner") == backend
    )


def run_local(
    store: Store,
    spec: CampaignSpec,
    uri: str,
    database: str,
    backends: int,
    description: Path,
    run_dir: Path,
    progress: bool = True,
    poll: float = 0.5,
) -> CollectResult:
    """Run `backends` local back ends on the campaign until it is complete (or Ctrl-C)."""
    desc = load_description(description)
    store.create_campaign(spec.name, spec.items(), template=spec.params, seed=spec.seed)
    group = make_backends(desc, backends, run_dir / spec.name, backend_values(spec, uri, database))
    start = time.monotonic()
    result = CollectResult(spec.name, spec.attempts, 0, 0, 0.0, None)
    try:
        for b in group:
            b.start()
        check = lambda bar: [_revive(b, store, spec.name, bar) for b in group]
        restarts = lambda: sum(b.restarts for b in group)
        watch(store, spec, result, start, len(group), check, restarts, progress, poll)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        for b in group:
            b.stop()
        clean_shared_memory()
    return finish(store, result, start, {b.backend_id: b.restarts for b in group})


def backend_values(spec: CampaignSpec, uri: str, database: str) -> dict[str, str]:
    """The ${...} values of the description that every back end of a campaign shares."""
    return {"ws": str(workspace()), "mongo_uri": uri, "database": database, "campaign": spec.name}


def watch(
    store: Store,
    spec: CampaignSpec,
    result: CollectResult,
    start: float,
    backends: int,
    check: Callable[[tqdm], object],
    restarts: Callable[[], int],
    progress: bool = True,
    poll: float = 0.5,
) -> None:
    """Show progress until every work item is done, calling `check(bar)` between polls (not while the database
    is unreachable: that is waited out, the back ends buffer their attempts); Ctrl-C propagates."""
    # On a terminal a live bar; in a log (CI, pipes) a line every 10 s.
    tty = sys.stderr.isatty()
    bar = tqdm(total=spec.attempts, unit="attempt", disable=not progress, file=sys.stderr, dynamic_ncols=tty,
               mininterval=0.5 if tty else 10.0, ncols=None if tty else 100)  # fmt: skip
    outage = False
    try:
        while True:
            try:
                p = store.progress(spec.name)
            except StorageUnavailable as exc:
                if not outage:
                    bar.write(
                        f"database unreachable ({exc.reason}); back ends buffer their attempts, waiting"
                    )
                outage = True
                time.sleep(poll)
                continue
            if outage:
                bar.write("database reachable again")
                outage = False
            if result.first_attempt_s is None and p["attempts"] > 0:
                result.first_attempt_s = time.monotonic() - start
            bar.update(p["done"] - bar.n)
            rate = p["attempts"] / max(1e-9, time.monotonic() - start)
            bar.set_postfix_str(_postfix(p, rate, backends, restarts()), refresh=False)
            result.done, result.successes, result.executed = p["done"], p["successes"], p["executed"]
            if p["done"] >= p["target"]:
                return
            check(bar)
            time.sleep(poll)
    finally:
        bar.close()


def finish(store: Store, result: CollectResult, start: float, restarts: dict[str, int]) -> CollectResult:
    """Complete the result (time, restarts, final counts) and, unless interrupted, mark the campaign finished."""
    result.seconds = time.monotonic() - start
    result.restarts = restarts
    if not result.interrupted:
        store.finish_campaign(result.campaign)
        p = store.progress(result.campaign)
        result.done, result.successes, result.executed = p["done"], p["successes"], p["executed"]
    return result


class CrashLoop(RuntimeError):
    """A back end keeps dying before it stores anything: restarting it again would not help."""


def _revive(b: LocalBackend, store: Store, campaign: str, bar: tqdm) -> None:
    dead = b.dead()
    if not dead:
        return
    try:
        done = store.progress(campaign)["done"]
    except StorageUnavailable:
        done = b.done_at_restart
    b.crash_streak = b.crash_streak + 1 if done == b.done_at_restart else 1
    b.done_at_restart = done
    if b.crash_streak > MAX_CRASH_STREAK:
        raise CrashLoop(
            f"back end {b.backend_id} died {b.crash_streak} times in a row with no attempt stored "
            f"({', '.join(dead)}); see its logs in {b.run_dir}"
        )
    b.restart()
    note = f"back end {b.backend_id}: {', '.join(dead)}; restarted (restart {b.restarts})"
    try:
        released = release_leases(store, campaign, b.backend_id)
        store.heartbeat(
            b.backend_id, campaign=campaign, restarts=b.restarts, last_error=f"exited: {', '.join(dead)}"
        )
        note += f", {released} lease(s) released"
    except StorageUnavailable:
        note += "; its leases expire by themselves (database unreachable)"
    bar.write(note)


def _postfix(p: dict, rate: float, backends: int, restarts: int) -> str:
    succ = p["successes"] / p["executed"] if p["executed"] else 0.0
    return f"success {succ:.0%} · {rate:.2f}/s · {backends} back end(s)" + (
        f" · {restarts} restarts" if restarts else ""
    )
