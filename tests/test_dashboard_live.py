"""The overview poller: exact incremental counts across the settled watermark, and timeline binning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from myriad_frontend.dashboard.live import LivePoller, timeline


def _counts(poller: LivePoller) -> tuple[int, int]:
    return poller.campaigns["live"].totals()


def test_counts_stay_exact_while_attempts_arrive(storage_store, dashboard_attempt):
    """Attempts arrive in the live window and the settled watermark then passes them, tick after tick.
    Time is controlled: each attempt's created_at is set to a chosen second, and the watermark (now - lag) is
    moved by the lag to 10 s or more before every attempt still to settle, so that the few seconds the test
    takes never move a boundary across an attempt."""
    store = storage_store
    store.create_campaign("live", [{"seed": i} for i in range(40)])
    base = datetime.now(UTC).replace(microsecond=0)
    poller = LivePoller(store)
    stored, successes, i = 0, 0, 0
    # (attempts to add, created_at of the first (one every 2 s), watermark after the tick), in s after base - 300
    steps = [(0, 0, 0), (6, 20, 10), (6, 60, 45), (6, 100, 85), (6, 140, 125), (6, 180, 250), (0, 0, 290)]
    for count, first, mark in steps:
        for k in range(count):
            record, images = dashboard_attempt("live", i, success=i % 4 == 0)
            store.store_attempt(record, images)
            created = base - timedelta(seconds=300 - first - 2 * k)
            store.db.attempts.update_one(
                {"attempt_key": record["attempt_key"]}, {"$set": {"created_at": created}}
            )
            stored, successes, i = stored + 1, successes + (i % 4 == 0), i + 1
        poller.lag = timedelta(seconds=300 - mark)
        poller.tick()
        state = poller.campaigns["live"]
        assert _counts(poller) == (stored, successes), (count, first, mark)
        assert sum(n for n, _ in state.settled.values()) + sum(n for n, _ in state.live.values()) == stored
        if (first, mark) == (60, 45):  # the batch just added is live, the earlier ones settled
            assert (
                sum(n for n, _ in state.settled.values()) == 6 and sum(n for n, _ in state.live.values()) == 6
            )
    assert not state.live and stored == 30
    poller.refresh_progress(force=True)
    assert poller.progress("live")["done"] == 30


def test_timeline_bins_into_round_buckets():
    seconds = {1000: [2, 1], 1001: [1, 0], 1130: [4, 4]}
    tl = timeline(seconds, 1000, 1200, points=60)
    assert tl["bucket_s"] == 5 and tl["t0"] == 1000
    assert sum(tl["attempts"]) == 7 and sum(tl["successes"]) == 5
    assert tl["attempts"][0] == 3 and tl["attempts"][26] == 4
    assert len(tl["attempts"]) <= 61
