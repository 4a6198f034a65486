"""The overview poller: exact incremental counts across the settled watermark, and timeline binning."""

from __future__ import annotations

from myriad_frontend.dashboard.live import LivePoller, timeline


def _counts(poller: LivePoller) -> tuple[int, int]:
    return poller.campaigns["live"].totals()


def test_counts_stay_exact_while_attempts_arrive(storage_store, dashboard_attempt):
    store = storage_store
    store.create_campaign("live", [{"seed": i} for i in range(20)])
    poller = LivePoller(store, lag_s=0.0)  # every tick settles everything before it
    poller.tick()
    assert _counts(poller) == (0, 0)
    for i in range(12):
        store.store_attempt(*dashboard_attempt("live", i, success=i % 4 == 0))
        if i % 5 == 0:
            poller.tick()
    poller.tick()
    poller.refresh_progress(force=True)
    assert _counts(poller) == (12, 3)
    state = poller.campaigns["live"]
    assert sum(n for n, _ in state.settled.values()) + sum(n for n, _ in state.live.values()) == 12
    assert poller.progress("live")["done"] == 12


def test_timeline_bins_into_round_buckets():
    seconds = {1000: [2, 1], 1001: [1, 0], 1130: [4, 4]}
    tl = timeline(seconds, 1000, 1200, points=60)
    assert tl["bucket_s"] == 5 and tl["t0"] == 1000
    assert sum(tl["attempts"]) == 7 and sum(tl["successes"]) == 5
    assert tl["attempts"][0] == 3 and tl["attempts"][26] == 4
    assert len(tl["attempts"]) <= 61
