"""The overview, kept current by one background poller so that page loads never scan the database.

Per campaign the poller keeps per-second attempt/success counts. Seconds older than ``lag_s`` are settled
once (an attempt's created_at is stamped just before its insert, so later arrivals there are not expected);
each tick re-reads only the window since the settled watermark through the created_at index. Work-item
state counts (``Store.progress``, a scan) and where the last ``phase_window_s`` of attempts' time went
(``Store.phase_times``, through the created_at index) are refreshed at a rate that adapts to their cost.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from myriad_storage.store import Store

from .jsonutil import dumps

log = logging.getLogger(__name__)
_NICE_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def _epoch(t: datetime) -> int:
    return int(t.timestamp())


@dataclass
class CampaignState:
    """What the poller knows about one campaign."""

    doc: dict
    settled: dict[int, list[int]] = field(default_factory=dict)  # epoch second -> [attempts, successes]
    live: dict[int, list[int]] = field(default_factory=dict)
    watermark: datetime | None = None
    last_attempt: datetime | None = None  # second of the newest attempt counted
    progress: dict | None = None
    progress_at: float = -math.inf  # monotonic time of the last progress refresh
    progress_cost: float = 0.0
    counts_final: bool = False  # counted after it finished: its counts no longer change
    progress_final: bool = False

    def totals(self) -> tuple[int, int]:
        a = s = 0
        for part in (self.settled, self.live):
            for n, k in part.values():
                a += n
                s += k
        return a, s


def _merge(into: dict[int, list[int]], rows: list[dict]) -> None:
    for r in rows:
        cell = into.setdefault(_epoch(r["t"]), [0, 0])
        cell[0] += r["attempts"]
        cell[1] += r["successes"]


def timeline(seconds: dict[int, list[int]], start: int, end: int, points: int = 60) -> dict:
    """Bin per-second counts into at most ``points`` buckets of a round width between start and end."""
    span = max(end - start, 1)
    width = next((b for b in _NICE_BUCKETS if span / b <= points), _NICE_BUCKETS[-1])
    t0 = start - start % width
    n = (end - t0) // width + 1
    att, suc = [0] * n, [0] * n
    for sec, (a, s) in seconds.items():
        i = (sec - t0) // width
        if 0 <= i < n:
            att[i] += a
            suc[i] += s
    return {"t0": t0, "bucket_s": width, "attempts": att, "successes": suc}


class LivePoller:
    """Polls campaigns, counts and heartbeats every ``interval_s``; ``snapshot()`` is the latest overview.

    Only unfinished campaigns are re-counted: a finished one is counted once after it finished, then kept."""

    def __init__(
        self,
        store: Store,
        interval_s: float = 1.0,
        lag_s: float = 60.0,
        rate_window_s: int = 60,
        progress_min_s: float = 2.0,
        phase_window_s: float = 600.0,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.lag = timedelta(seconds=lag_s)
        self.rate_window_s = rate_window_s
        self.progress_min_s = progress_min_s
        self.phase_window_s = phase_window_s
        self.campaigns: dict[str, CampaignState] = {}
        self._lock = threading.Lock()
        self._snapshot = dumps({"loading": True, "campaigns": [], "backends": [], "error": None})
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.ticks = 0
        self.counted = 0  # attempt-count queries made (finished campaigns are not counted again)

    def start(self) -> None:
        """Start polling counts and (separately, as it scans) work-item states in daemon threads; idempotent."""
        if not self._threads:
            for target, name in ((self._run, "dashboard-poller"), (self._run_progress, "dashboard-progress")):
                self._threads.append(threading.Thread(target=target, name=name, daemon=True))
                self._threads[-1].start()

    def stop(self) -> None:
        """Stop polling and wait for the threads (a running database call finishes first)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def snapshot(self) -> bytes:
        """The latest overview as JSON bytes."""
        with self._lock:
            return self._snapshot

    def progress(self, campaign: str) -> dict | None:
        """The latest work-item counts of a campaign (None before the first refresh)."""
        state = self.campaigns.get(campaign)
        return state.progress if state else None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                body = self.tick()
            except Exception as exc:  # noqa: BLE001 - keep polling; the page shows the error
                log.warning("dashboard poll failed: %s", exc)
                old = json.loads(self.snapshot())
                old["error"] = str(exc)[:400]
                body = dumps(old)
            with self._lock:
                self._snapshot = body
            self.ticks += 1
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def tick(self) -> bytes:
        """One poll: refresh every campaign and the heartbeats of unfinished ones; return the overview JSON."""
        now = datetime.now(UTC)
        for doc in self.store.campaigns():
            state = self.campaigns.setdefault(doc["name"], CampaignState(doc))
            state.doc = doc
            if not state.counts_final:  # a finished campaign is counted once more, then kept
                self._refresh_counts(state, now)
                state.counts_final = doc.get("finished_at") is not None
        overview = {
            "loading": False,
            "error": None,
            "now": now,
            "campaigns": [self._summary(s, now) for s in self.campaigns.values()],
            "backends": [
                b
                for s in self.campaigns.values()
                if not s.counts_final
                for b in self.store.backends(s.doc["name"])
            ],
        }
        return dumps(overview)

    def _refresh_counts(self, state: CampaignState, now: datetime) -> None:
        name = state.doc["name"]
        new_mark = now.replace(microsecond=0) - self.lag
        if state.watermark is None:  # cold: the whole campaign once (its own index, no time bound)
            rows = self.store.attempt_histogram(name)
            self.counted += 1
        else:
            rows = self.store.attempt_histogram(name, since=min(state.watermark, new_mark))
            self.counted += 1
        if rows:
            state.last_attempt = max(state.last_attempt or rows[-1]["t"], rows[-1]["t"])
        _merge(state.settled, [r for r in rows if r["t"] < new_mark])
        rows = [r for r in rows if r["t"] >= new_mark]
        state.watermark = max(new_mark, state.watermark or new_mark)
        state.live = {}
        _merge(state.live, rows)

    def _run_progress(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.refresh_progress()
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                log.warning("dashboard progress refresh failed: %s", exc)

    def refresh_progress(self, force: bool = False) -> None:
        """Refresh the work-item counts of each campaign that is due (every max(progress_min_s, 10 x cost))."""
        for state in list(self.campaigns.values()):
            due = max(self.progress_min_s, 10.0 * state.progress_cost)
            if not state.progress_final and (force or time.monotonic() - state.progress_at >= due):
                finished = state.doc.get("finished_at") is not None  # read before counting
                self._refresh_progress(state)
                state.progress_final = finished

    def _refresh_progress(self, state: CampaignState) -> None:
        started = time.monotonic()
        progress = self.store.progress(state.doc["name"], outcomes=True)
        last = state.last_attempt
        if last is not None:  # the campaign's last phase_window_s of attempts, through the created_at index
            since = last - timedelta(seconds=self.phase_window_s)
            progress["time"] = {
                **self.store.phase_times(state.doc["name"], since),
                "window_s": self.phase_window_s,
            }
        state.progress_cost = time.monotonic() - started
        state.progress_at = time.monotonic()
        state.progress = {**progress, "as_of": datetime.now(UTC)}

    def _summary(self, state: CampaignState, now: datetime) -> dict:
        doc = state.doc
        attempts, successes = state.totals()
        seconds = {**state.settled}
        for sec, (a, s) in state.live.items():
            cell = seconds.setdefault(sec, [0, 0])
            seconds[sec] = [cell[0] + a, cell[1] + s]
        now_s = _epoch(now)
        recent = sum(a for sec, (a, _) in seconds.items() if sec > now_s - self.rate_window_s)
        rate = recent / self.rate_window_s
        target = int(doc.get("target") or 0)
        remaining = max(target - attempts, 0)
        start = min(seconds) if seconds else _epoch(doc.get("created_at") or now)
        end = now_s if doc.get("finished_at") is None else max(seconds, default=now_s)
        return {
            "name": doc["name"],
            "target": target,
            "created_at": doc.get("created_at"),
            "finished_at": doc.get("finished_at"),
            "attempts": attempts,
            "successes": successes,
            "success_rate": successes / attempts if attempts else None,
            "rate": rate,
            "eta_s": remaining / rate if rate > 0 and remaining else (0.0 if not remaining else None),
            "items": state.progress,
            "timeline": timeline(seconds, start, max(end, start)),
        }
