"""Hardening of storage and dashboard: heartbeats per (campaign, backend), bounded listings, the poller
counting only active campaigns, idle connections closed by the dashboard, spool files that cannot run code."""

from __future__ import annotations

import json
import socket
import urllib.request

from myriad_frontend.dashboard import serve
from myriad_frontend.dashboard.live import LivePoller
from myriad_storage.store import MAX_LISTED


def test_heartbeats_of_two_campaigns_do_not_overwrite_each_other(storage_store):
    s = storage_store
    s.db.backends.drop_indexes()
    s.db.backends.create_index("backend", unique=True)  # the index of earlier versions
    s.ensure_indexes()  # replaces it
    s.heartbeat("b0", "first", state="working", attempts=3)
    s.heartbeat("b0", "second", state="idle", attempts=0)
    s.heartbeat("b0", "first", state="stopping", attempts=4)
    assert [(b["campaign"], b["state"], b["attempts"]) for b in s.backends()] == [
        ("first", "stopping", 4),
        ("second", "idle", 0),
    ]
    assert [b["state"] for b in s.backends("second")] == ["idle"]


def test_listings_are_capped_and_paged(storage_store):
    s = storage_store
    s.db.campaigns.insert_many(
        [
            {"name": f"c{i:04d}", "created_at": i, "finished_at": None if i % 2 else i}
            for i in range(MAX_LISTED + 5)
        ]
    )
    assert len(s.campaigns()) == MAX_LISTED and len(s.campaigns(limit=0)) == MAX_LISTED
    assert s.count_campaigns() == MAX_LISTED + 5
    assert [c["name"] for c in s.campaigns(skip=MAX_LISTED)] == [
        f"c{i:04d}" for i in range(MAX_LISTED, MAX_LISTED + 5)
    ]
    assert [c["name"] for c in s.campaigns(limit=3, active=True)] == ["c0001", "c0003", "c0005"]
    s.db.backends.insert_many([{"campaign": "c", "backend": f"b{i:05d}"} for i in range(MAX_LISTED + 1)])
    assert len(s.backends("c")) == MAX_LISTED and len(s.backends("c", skip=MAX_LISTED)) == 1


def test_poller_counts_only_active_campaigns(storage_store, dashboard_attempt):
    s = storage_store
    for name in ("done", "running"):
        s.create_campaign(name, [{"seed": i} for i in range(4)])
        for i in range(2):
            s.store_attempt(*dashboard_attempt(name, i))
    s.finish_campaign("done")
    poller = LivePoller(s, lag_s=0.0)
    poller.tick()
    poller.refresh_progress(force=True)
    counted, progressed = poller.counted, poller.campaigns["done"].progress_at
    for _ in range(3):
        poller.tick()
        poller.refresh_progress(force=True)
    assert poller.counted == counted + 3  # only "running", once per tick
    assert poller.campaigns["done"].progress_at == progressed
    assert poller.campaigns["done"].totals() == (2, 2) and poller.progress("done")["done"] == 2
    s.store_attempt(*dashboard_attempt("running", 2))
    s.heartbeat("b0", "done", state="stopping")
    s.heartbeat("b0", "running", state="working")
    overview = json.loads(poller.tick())
    assert poller.campaigns["running"].totals() == (3, 3)
    assert [(b["campaign"], b["state"]) for b in overview["backends"]] == [("running", "working")]


def test_dashboard_closes_idle_half_sent_connections(mongo_uri):
    server = serve(mongo_uri, "t", port=0, poll_interval_s=0.25, request_timeout_s=1.0)
    try:
        host, port = server.server_address[:2]
        with socket.create_connection((host, port), timeout=60) as half:
            half.sendall(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n")  # never finished
            assert half.recv(1024) == b""  # the server closed it (the client would wait 60 s)
        with socket.create_connection((host, port), timeout=60) as idle:
            assert idle.recv(1024) == b""  # nothing sent at all
        with urllib.request.urlopen(server.url + "api/overview", timeout=60) as r:
            assert r.status == 200
    finally:
        server.stop()


class _Payload:
    """Unpickling this runs code: it creates the file named by `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_spool_files_are_private_bson_and_old_pickles_never_run(
    mongo_uri, storage_attempt_factory, tmp_path, caplog
):
    import pickle
    import stat
    import uuid

    import bson

    from myriad_storage.store import Store
    from myriad_storage.writer import BufferedWriter

    spool, marker = tmp_path / "spool", tmp_path / "executed"
    spool.mkdir()
    (spool / "00000000000000000001-old.pkl").write_bytes(pickle.dumps({"record": _Payload(str(marker))}))
    db = f"t_{uuid.uuid4().hex[:8]}"
    down = BufferedWriter(lambda: Store("mongodb://127.0.0.1:1/", server_timeout_ms=100), spool_dir=spool)
    record, images = storage_attempt_factory("sp", 0)
    down.submit(record, images)
    down.close(timeout=0.5)
    (path,) = spool.glob("*.bson")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bson.decode(path.read_bytes()) == {"record": record, "images": images}
    with caplog.at_level("ERROR", logger="myriad_storage.writer"):
        writer = BufferedWriter(lambda: Store(mongo_uri, db), spool_dir=spool)  # replays the BSON file only
        assert writer.flush(timeout=30)
        writer.close()
    assert "not loading 1 pickle spool file(s)" in caplog.text
    assert not marker.exists() and (spool / "00000000000000000001-old.pkl").exists()
    with Store(mongo_uri, db) as s:
        assert s.attempt(record["attempt_key"])["success"] is True
        s.client.drop_database(db)
