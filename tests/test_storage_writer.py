"""BufferedWriter: outage buffering with a real subprocess server, spool replay after a killed writer."""

import os
import subprocess
import sys
import textwrap
import uuid

from conftest import WS, free_port, wait_for

from myriad_storage.server import LocalServer
from myriad_storage.store import Store
from myriad_storage.writer import BufferedWriter


def test_outage_buffers_then_flushes_each_attempt_once(
    storage_local_server, storage_attempt_factory, tmp_path
):
    srv = storage_local_server
    with Store(srv.uri) as s:
        s.create_campaign("out", [{"seed": i} for i in range(3)])
    srv.stop()

    events = []
    writer = BufferedWriter(
        lambda: Store(srv.uri, server_timeout_ms=300),
        spool_dir=tmp_path / "spool",
        on_status=lambda state, msg: events.append((state, msg)),
        initial_backoff_s=0.1,
        max_backoff_s=0.4,
    )
    try:
        for i in range(3):
            writer.submit(*storage_attempt_factory("out", i))
        wait_for(lambda: writer.db_up is False, 10, "the writer to find the database down", interval=0.05)
        assert writer.pending() == 3 and len(list((tmp_path / "spool").glob("*.bson"))) == 3
        assert events[0][0] == "down" and f"database unreachable at {srv.uri}" in events[0][1]

        restarted = LocalServer(srv.data_dir, port=srv.port)
        restarted.ensure_running()
        assert writer.flush(timeout=30)
    finally:
        writer.close(timeout=1)
    assert [e[0] for e in events] == ["down", "up"] and events[1][1] == "database back: flushed 3"
    assert list((tmp_path / "spool").glob("*")) == []
    with Store(srv.uri) as s:
        assert s.count_attempts({"campaign": "out"}) == 3
        assert s.db["images.files"].count_documents({}) == 9
        assert s.progress("out")["done"] == 3
    assert (writer.stored, writer.duplicates, writer.failed) == (3, 0, 0)


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from myriad_storage.store import Store
    from myriad_storage.writer import BufferedWriter
    from myriad_storage.codec import encode_png
    import numpy as np
    w = BufferedWriter(lambda: Store(sys.argv[1], server_timeout_ms=200), spool_dir=sys.argv[2])
    for i in range(2):
        rec = {"attempt_key": f"sp/{i:06d}/0", "campaign": "sp", "item_id": f"sp/{i:06d}", "success": True}
        w.submit(rec, {"pre_rgb": encode_png(np.full((8, 8, 3), i, np.uint8))})
    os.kill(os.getpid(), signal.SIGKILL)  # accepted, never stored, never closed
    """
)


def test_spool_replay_after_killed_writer(mongo_uri, tmp_path):
    spool = tmp_path / "spool"
    dead = f"mongodb://127.0.0.1:{free_port()}/"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, dead, str(spool), str(WS / "src" / "myriad_storage")],
        timeout=60,
        capture_output=True,
        check=False,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr
    assert len(list(spool.glob("*.bson"))) == 2

    db = f"test_{uuid.uuid4().hex[:8]}"
    writer = BufferedWriter(lambda: Store(mongo_uri, db), spool_dir=spool)
    try:
        assert writer.flush(timeout=20)
        writer.submit(
            {"attempt_key": "sp/000000/0", "campaign": "sp", "item_id": "sp/000000"}, {}
        )  # duplicate
        assert writer.flush(timeout=20)
    finally:
        writer.close()
    assert (writer.stored, writer.duplicates) == (2, 1)
    assert list(spool.glob("*.bson")) == []
    with Store(mongo_uri, db) as s:
        assert sorted(a["attempt_key"] for a in s.attempts({"campaign": "sp"})) == [
            "sp/000000/0",
            "sp/000001/0",
        ]
        assert s.db["images.files"].count_documents({}) == 2
        s.client.drop_database(db)


def test_bad_record_is_set_aside_without_blocking(mongo_uri, tmp_path, storage_attempt_factory):
    db = f"test_{uuid.uuid4().hex[:8]}"
    events = []
    writer = BufferedWriter(lambda: Store(mongo_uri, db), tmp_path / "spool", lambda *e: events.append(e))
    try:
        writer.submit({"attempt_key": "bad/0", "campaign": "", "item_id": "bad"}, {})
        writer.submit(*storage_attempt_factory("good", 0))
        assert writer.flush(timeout=20)
    finally:
        writer.close()
    assert (writer.stored, writer.failed) == (1, 1) and events[0][0] == "error" and "campaign" in events[0][1]
    assert len(os.listdir(tmp_path / "spool" / "failed")) == 1
    with Store(mongo_uri, db) as s:
        assert s.count_attempts({"campaign": "good"}) == 1
        s.client.drop_database(db)
