"""`myriad collect`: create a campaign, run back ends until every work item is done, watch and restart them."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from myriad_frontend.campaign import CampaignSpec
from myriad_frontend.checks import check_worlds
from myriad_frontend.description import load_description
from myriad_frontend.processes import (
    BackendProcesses,
    clean_shared_memory,
    raise_if_interrupted,
    signals_deferred,
)
from myriad_frontend.run import CrashLoop, Run, open_run
from myriad_runtime import workspace
from myriad_storage.store import StorageUnavailable, Store

# The share of the database's time the progress display takes at most, for each of its two reads: the next read is
# due 1/LOAD times as long after the last as that one took. The full counts (Store.progress: successes, rate) read
# every document of the campaign on SecantusDB (~80 us per attempt): at a 10 % share they took ~0.02 s of database
# CPU per stored attempt, 8 % of two back ends' throughput on two cores (bench/bench_collect.py). The bar's position
# and the end of the run come from the items left (Store.unfinished: through an index, so it costs what is left and
# is due at every poll near the end).
PROGRESS_LOAD = 0.02


class _Paced:
    """Reads that take at most `load` of the database's time (a failed read is due again at once)."""

    def __init__(self, load: float) -> None:
        self.load, self.due_at = load, 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.due_at

    def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        asked = time.monotonic()
        out = fn(*args)
        self.due_at = asked + (time.monotonic() - asked) / self.load
        return out


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
    failed: bool = False  # the run could not go on (no back end left)
    domain_id: int | None = None
    executed: int = 0  # attempts that executed a grasp (the label's denominator)


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
    record: Path | None = None,
) -> CollectResult:
    """Run `backends` local back ends on the campaign until it is complete (or Ctrl-C / SIGTERM).

    The run takes the domain in $ROS_DOMAIN_ID when set (refused if another run holds it), else a free one."""
    desc = load_description(description)
    if record is not None:
        desc = desc.with_recorder(record)
    check_worlds(desc, {"ws": str(workspace()), "database": database, "campaign": spec.name})
    run = open_run(store, spec, uri, database, run_dir, os.environ.get("ROS_DOMAIN_ID"))
    group: list[BackendProcesses] = []
    start = time.monotonic()
    result = CollectResult(spec.name, spec.attempts, 0, 0, 0.0, None, domain_id=run.domain.domain_id)
    print(f"ROS 2 domain {run.domain.domain_id}: namespaces /myriad/b0..b{backends - 1} "
          f"(ROS_DOMAIN_ID={run.domain.domain_id} rviz2 -d config/myriad.rviz)", file=sys.stderr)  # fmt: skip
    try:
        group += [BackendProcesses(f"b{i}", run.plan(desc, i)) for i in range(backends)]
        for b in group:
            b.start()
        check = lambda bar: [_revive(b, run, bar) for b in group]
        restarts = lambda: sum(b.restarts for b in group)
        watch(store, spec, result, start, len(group), check, restarts, progress, poll)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        with signals_deferred():
            for b in group:
                b.stop()
            run.release_leases([b.backend_id for b in group])
            clean_shared_memory(after_stop=True)
            run.close()
    return finish(store, result, start, {b.backend_id: b.restarts for b in group})


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
    outage, target = False, spec.attempts
    full, left = _Paced(PROGRESS_LOAD), _Paced(PROGRESS_LOAD)
    try:
        while True:
            raise_if_interrupted()
            try:
                if full.due():
                    p = full.read(store.progress, spec.name)
                    target, done = p["target"], p["done"]
                    result.successes, result.executed = p["successes"], p["executed"]
                    rate = p["attempts"] / max(1e-9, time.monotonic() - start)
                    bar.set_postfix_str(_postfix(p, rate, backends, restarts()), refresh=False)
                elif left.due():
                    done = target - left.read(store.unfinished, spec.name)
                    if done >= target:  # ended only when the full counts agree (items may still be inserted)
                        full.due_at, done = 0.0, min(done, target - 1)
                else:
                    check(bar)
                    time.sleep(poll)
                    continue
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
            if result.first_attempt_s is None and done > 0:
                result.first_attempt_s = time.monotonic() - start
            bar.update(done - bar.n)
            result.done = done
            if done >= target:
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


def _revive(b: BackendProcesses, run: Run, bar: tqdm) -> None:
    dead = b.dead()
    if not dead:
        return
    try:
        note = run.backend_exited(b.backend_id, ", ".join(dead), f"restarted (restart {b.restarts + 1})")
    except CrashLoop as exc:
        first = b.first_error()
        raise CrashLoop(f"{exc}" + (f"; first error: {first}" if first else "")) from None
    b.restart()
    bar.write(note)


def _postfix(p: dict, rate: float, backends: int, restarts: int) -> str:
    succ = p["successes"] / p["executed"] if p["executed"] else 0.0
    return (
        f"success {succ:.0%} · {rate:.2f}/s"
        + (f" · {backends} back end(s)" if backends else "")
        + (f" · {restarts} restarts" if restarts else "")
    )
