"""Store against a real (in-process) SecantusDB: campaigns, leases, attempts, images, errors."""

import socket
import struct
import threading
import uuid
from datetime import UTC, datetime, timedelta

import gridfs
import pytest
from conftest import free_port, wait_for
from pymongo import monitoring

from myriad_storage.server import LocalServer
from myriad_storage.store import StorageUnavailable, Store


def items(n, offset=0):
    return [{"seed": offset + i, "objects": 3} for i in range(n)]


def test_campaign_idempotent_and_conflict(storage_store):
    s = storage_store
    first = s.create_campaign("c1", items(5), template={"objects": 3}, seed=7)
    assert first["target"] == 5 and first["finished_at"] is None
    again = s.create_campaign("c1", items(5))
    assert again["created_at"] == first["created_at"]
    assert [w["item_id"] for w in s.work_items("c1")] == [f"c1/{i:06d}" for i in range(5)]
    with pytest.raises(ValueError, match="'c1' already exists with different items"):
        s.create_campaign("c1", items(5, offset=1))
    with pytest.raises(ValueError, match="int 'seed'"):
        s.create_campaign("c2", [{"objects": 3}])
    assert [c["name"] for c in s.campaigns()] == ["c1"]
    s.finish_campaign("c1")
    assert s.campaign("c1")["finished_at"] is not None
    with pytest.raises(KeyError):
        s.finish_campaign("nope")


def wait_leases_expired(s, campaign: str, timeout: float = 60.0) -> None:
    """Wait until every lease of the campaign has expired by the clock of this machine (no fixed sleep)."""
    ends = [w["lease_expires"].replace(tzinfo=UTC) for w in s.work_items(campaign, state="leased")]
    wait_for(lambda: datetime.now(UTC) > max(ends), timeout, "the leases to expire", interval=0.05)


def test_claim_renew_release_and_expiry_reclaim(storage_store):
    s = storage_store
    s.create_campaign("c", items(3))
    a = s.claim("c", "A", lease_s=2.0)
    assert (
        a["item_id"] == "c/000000" and a["state"] == "leased" and a["lease_owner"] == "A" and a["claims"] == 1
    )
    assert s.renew(a["item_id"], "A", 2.0) and not s.renew(a["item_id"], "B", 2.0)
    assert s.claim("c", "B", 2.0)["item_id"] == "c/000001"
    wait_leases_expired(s, "c")  # both leases expire; the lowest index is reclaimed first
    b = s.claim("c", "B", 5.0)
    assert b["item_id"] == "c/000000" and b["lease_owner"] == "B" and b["claims"] == 2
    assert not s.renew("c/000000", "A", 5.0)
    assert not s.release("c/000000", "A") and s.release("c/000000", "B")
    assert s.work_items("c", state="pending")[0]["item_id"] == "c/000000"
    p = s.progress("c")
    assert (p["target"], p["pending"], p["leased"], p["done"]) == (3, 2, 1, 0)
    # an expired lease goes first, then pending items by index
    assert [s.claim("c", "C", 5.0)["item_id"] for _ in range(3)] == ["c/000001", "c/000000", "c/000002"]
    assert s.claim("c", "C", 5.0) is None


def test_claim_floor_windows_and_release(storage_store, monkeypatch):
    import myriad_storage.store as store_mod

    monkeypatch.setattr(store_mod, "CLAIM_WINDOW", 2)
    s = storage_store
    s.create_campaign("w", items(7))
    assert [s.claim("w", "A", 60.0)["index"] for _ in range(7)] == list(range(7))
    assert s.claim("w", "A", 60.0) is None
    assert s.campaign("w")["claim_floor"] == 8
    # Again, from a floor past the last item, not taking expired leases (a logger's grace after an outage): this
    # raised UnboundLocalError.
    assert s.claim("w", "A", 60.0, take_expired=False) is None
    assert s.release("w/000003", "A")
    assert s.campaign("w")["claim_floor"] == 3
    assert s.claim("w", "B", 60.0)["index"] == 3
    assert s.release("w/000005", "A") and s.release("w/000001", "A")
    assert [s.claim("w", "B", 60.0)["index"] for _ in range(2)] == [1, 5]
    assert s.claim("w", "B", 60.0) is None


def test_concurrent_claims_never_share_an_item(storage_store, mongo_uri):
    s = storage_store
    s.create_campaign("cc", items(40))
    got: dict[str, list] = {}

    def worker(name):
        with Store(mongo_uri, s.db.name) as mine:
            got[name] = []
            while (item := mine.claim("cc", name, 60.0)) is not None:
                got[name].append(item["item_id"])

    threads = [threading.Thread(target=worker, args=(f"b{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [i for ids in got.values() for i in ids]
    assert len(claimed) == 40 and len(set(claimed)) == 40
    assert s.progress("cc")["leased"] == 40


def test_store_attempt_idempotent_and_images_byte_equal(storage_store, storage_attempt_factory):
    s = storage_store
    s.create_campaign("sa", items(2))
    item = s.claim("sa", "b0", 60.0)
    record, images = storage_attempt_factory("sa", item["index"])
    assert s.store_attempt(record, images) == (record["attempt_key"], True)
    files = s.db["images.files"].count_documents({})
    assert files == 3

    dup = {**record, "backend": "other", "success": False}
    assert s.store_attempt(dup, images) == (record["attempt_key"], False)
    assert s.db["images.files"].count_documents({}) == files
    assert s.count_attempts({"campaign": "sa"}) == 1

    doc = s.attempt(record["attempt_key"])
    assert doc["backend"] == "b0" and doc["success"] is True and doc["created_at"] is not None
    for name, data in images.items():
        assert s.image(doc["images"][name]) == data
        assert s.image(str(doc["images"][name])) == data
    w = s.work_items("sa", state="done")
    assert [x["attempt_key"] for x in w] == [record["attempt_key"]]
    p = s.progress("sa")
    assert (p["done"], p["pending"], p["attempts"], p["successes"]) == (1, 1, 1, 1)
    assert [a["attempt_key"] for a in s.attempts({"backend": "b0"}, limit=5)] == [record["attempt_key"]]
    with pytest.raises(KeyError, match="no image"):
        s.image("0123456789ab0123456789ab")


class BucketReads(monitoring.CommandListener):
    """Records the filter of every find on the image bucket's collections (a real driver's command events)."""

    def __init__(self):
        self.filters: list[tuple[str, dict]] = []
        self.active = True  # registered for the process: clients made later report too

    def started(self, event):
        if self.active and event.command_name == "find" and str(event.command["find"]).startswith("images."):
            self.filters.append((event.command["find"], dict(event.command.get("filter", {}))))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def test_images_are_gridfs_files_stored_without_reading_the_bucket(mongo_uri, storage_attempt_factory):
    """Images are GridFS files any GridFS reader opens (several chunks each for a big one), with GridFS's indexes,
    and storing them never reads the bucket unfiltered: SecantusDB answers such a read by decoding every stored
    image (pymongo's upload_from_stream made one per collection per image)."""
    reads = BucketReads()
    monitoring.register(reads)  # for clients made from now on, as the Store's
    s = Store(mongo_uri, database=f"test_{uuid.uuid4().hex[:12]}", server_timeout_ms=3000)
    try:
        s.create_campaign("gf", items(2))
        for index in range(2):
            record, images = storage_attempt_factory("gf", index, size=600)  # pre_rgb: ~1 MB, 5 chunks
            assert s.store_attempt(record, images)[1] is True
        while_storing = list(reads.filters)
        assert [r for r in while_storing if not r[1]] == []
        bucket = gridfs.GridFSBucket(s.db, "images")
        doc = s.attempt(record["attempt_key"])
        assert s.db["images.chunks"].count_documents({"files_id": doc["images"]["pre_rgb"]}) > 1
        for name, data in images.items():
            grid = bucket.open_download_stream(doc["images"][name])
            assert grid.read() == data and grid.filename == f"{record['attempt_key']}/{name}.png"
            assert grid.metadata == {"attempt_key": record["attempt_key"], "name": name, "campaign": "gf"}
        assert len(reads.filters) > len(while_storing)  # the listener hears this client's reads
        indexes = [i["key"] for i in s.db["images.chunks"].list_indexes()]
        assert {"files_id": 1, "n": 1} in [dict(k) for k in indexes]
    finally:
        reads.active = False
        s.client.drop_database(s.db.name)
        s.close()


def test_done_even_if_lease_was_reclaimed(storage_store, storage_attempt_factory):
    s = storage_store
    s.create_campaign("rc", items(1))
    s.claim("rc", "slow", 0.5)
    wait_leases_expired(s, "rc")
    assert s.claim("rc", "fast", 60.0, take_expired=False) is None  # pending items only
    assert s.claim("rc", "fast", 60.0)["lease_owner"] == "fast"
    record, images = storage_attempt_factory("rc", 0)
    assert s.store_attempt({**record, "backend": "slow"}, images)[1] is True  # first stored wins
    assert s.store_attempt({**record, "backend": "fast"}, images)[1] is False
    (w,) = s.work_items("rc")
    assert w["state"] == "done" and w["attempt_key"] == record["attempt_key"]
    assert s.claim("rc", "fast", 60.0) is None


def test_unfinished_counts_pending_and_leased_items_of_one_campaign(storage_store, storage_attempt_factory):
    s = storage_store
    s.create_campaign("uf", items(3))
    s.create_campaign("other", items(2))
    assert s.unfinished("uf") == 3 and s.unfinished("nope") == 0
    s.claim("uf", "A", 60.0)
    assert s.unfinished("uf") == 3  # leased is not done
    s.store_attempt(*storage_attempt_factory("uf", 0))
    assert s.unfinished("uf") == 2 and s.unfinished("other") == 2
    assert s.progress("uf")["done"] == 1


def test_phase_times_are_means_per_attempt_in_run_order(storage_store, storage_attempt_factory):
    """Where the time goes: each phase's mean over the campaign's attempts with timings (a phase an attempt never
    reached counts 0), in the order the attempts ran them; other campaigns and attempts without timings aside."""
    s = storage_store
    s.create_campaign("pt", items(4))
    s.create_campaign("other", items(1))
    full = {"reset": 0.25, "capture_pre": 0.1, "reach": 0.5, "lift": 0.25, "total": 1.1, "encode": 0.05}
    refused = {"reset": 0.35, "capture_pre": 0.1, "total": 0.45, "encode": 0.05}
    for i, timings in enumerate((full, full, refused, None)):
        record, images = storage_attempt_factory("pt", i)
        s.store_attempt({**record, "timings": timings} if timings else record, images)
    record, images = storage_attempt_factory("other", 0)
    s.store_attempt({**record, "timings": {"reset": 9.0, "capture_pre": 9.0}}, images)
    t = s.phase_times("pt")
    assert t["attempts"] == 3
    assert list(t["phases"]) == ["reset", "capture_pre", "reach", "lift", "total", "encode"]
    expected = {"reset": 0.85 / 3, "capture_pre": 0.1, "reach": 1 / 3, "lift": 0.5 / 3, "total": 2.65 / 3,
                "encode": 0.05}  # fmt: skip
    assert t["phases"] == pytest.approx(expected)
    assert s.phase_times("none") == {"attempts": 0, "phases": {}}
    # since: only the attempts stored since then (a full one moved an hour back drops out)
    s.db.attempts.update_one(
        {"item_id": "pt/000000"}, {"$set": {"created_at": datetime.now(UTC) - timedelta(hours=1)}}
    )
    recent = s.phase_times("pt", since=datetime.now(UTC) - timedelta(minutes=10))
    mean = {k: (full[k] + refused.get(k, 0.0)) / 2 for k in full}  # one full attempt and the refused one
    assert recent["attempts"] == 2 and recent["phases"] == pytest.approx(mean)


def test_heartbeat_upsert_and_backends(storage_store):
    s = storage_store
    s.heartbeat("b0", campaign="c", state="idle", attempts=0)
    s.heartbeat("b0", campaign="c", state="working", attempts=3)
    s.heartbeat("b1", campaign="d", state="idle")
    (b0,) = s.backends("c")
    assert b0["state"] == "working" and b0["attempts"] == 3 and b0["updated_at"] >= b0["created_at"]
    assert [b["backend"] for b in s.backends()] == ["b0", "b1"]


def test_unreachable_server_error_masks_password():
    port = free_port()
    store = Store(f"mongodb://myriad:s3cret@127.0.0.1:{port}/", server_timeout_ms=300)
    with pytest.raises(StorageUnavailable) as err:
        store.ping()
    text = str(err.value)
    assert f"mongodb://myriad:***@127.0.0.1:{port}/" in text and "s3cret" not in text
    assert err.value.uri == f"mongodb://myriad:***@127.0.0.1:{port}/"
    store.close()


def test_local_server_reuse_and_stop(storage_local_server, tmp_path):
    srv = storage_local_server
    assert srv.is_running()
    again = LocalServer(srv.data_dir, port=srv.port)
    assert again.ensure_running() == srv.uri and again.pid() == srv.pid()
    with Store(srv.uri, server_timeout_ms=2000) as s:
        s.ping()
    other = LocalServer(tmp_path / "other", port=srv.port)
    with pytest.raises(RuntimeError, match="in use by a process that is not"):
        other.ensure_running()
    srv.stop()
    assert not srv.is_running() and not srv.pid_file.exists()


class Writes(monitoring.CommandListener):
    """Records every write command a driver sends (a real driver's command events)."""

    def __init__(self):
        self.commands: list[dict] = []
        self.active = True

    def started(self, event):
        if self.active and event.command_name in ("insert", "update", "delete"):
            self.commands.append(dict(event.command))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def test_the_local_servers_uri_makes_no_retryable_writes(storage_local_server):
    """SecantusDB 0.7 keeps every retryable write for 30 min and scans the lot at each write (sorting them past
    10,000), so a long collection's writes grew ~8x dearer: through the local server's URI writes are plain."""
    writes = Writes()
    monitoring.register(writes)
    try:
        with Store(storage_local_server.uri, database="w", server_timeout_ms=3000) as s:
            s.create_campaign("rw", items(1))
            s.claim("rw", "b0", 60.0)
        assert writes.commands and not [c for c in writes.commands if "txnNumber" in c]
    finally:
        writes.active = False


def _frames(sock: socket.socket):
    """MongoDB wire messages read from sock: (bytes, requestID, responseTo)."""
    while True:
        head = _read(sock, 16)
        if head is None:
            return
        length, request_id, response_to, _ = struct.unpack("<iiii", head)
        body = _read(sock, length - 16)
        if body is None:
            return
        yield head + body, request_id, response_to


def _read(sock: socket.socket, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        try:
            chunk = sock.recv(n - len(out))
        except OSError:
            return None
        if not chunk:
            return None
        out += chunk
    return out


class AnswerLosingRelay:
    """A TCP relay to a database server that, once, passes on a request containing `lost` and then closes the
    client's connection instead of relaying the server's answer: a write that commits with its answer lost."""

    def __init__(self, port: int, lost: bytes) -> None:
        self.target, self.lost, self.armed, self.dropped = port, lost, True, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            lost: set[int] = set()
            threading.Thread(target=self._up, args=(client, server, lost), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, lost), daemon=True).start()

    def _up(self, client, server, lost: set[int]) -> None:
        for frame, request_id, _ in _frames(client):
            if self.armed and self.lost in frame:
                self.armed = False
                lost.add(request_id)
            server.sendall(frame)

    def _down(self, server, client, lost: set[int]) -> None:
        for frame, _, response_to in _frames(server):
            if response_to in lost:
                self.dropped += 1
                for sock in (client, server):  # shutdown first: it ends the other thread's recv at once
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                return
            client.sendall(frame)

    def close(self) -> None:
        self.listener.close()


def test_an_attempt_whose_insert_answer_was_lost_keeps_its_images(
    storage_local_server, storage_attempt_factory
):
    """Without the driver's retry (the local server's URI), an attempt insert that commits but whose answer never
    arrives fails the store; the error path used to delete the images the stored attempt refers to. Now they stay,
    and storing it again (as the logger's spool does) finds it stored, adding no files."""
    assert "retryWrites=false" in storage_local_server.uri
    insert_attempts = b"\x02insert\x00" + struct.pack("<i", 9) + b"attempts\x00"
    relay = AnswerLosingRelay(storage_local_server.port, insert_attempts)
    db = f"test_{uuid.uuid4().hex[:12]}"
    direct = Store(storage_local_server.uri, database=db, server_timeout_ms=3000)
    uri = f"mongodb://127.0.0.1:{relay.port}/?retryWrites=false&directConnection=true"  # not to the hosts it names
    lossy = Store(uri, database=db, server_timeout_ms=3000)
    try:
        direct.create_campaign("lost", items(1))
        record, images = storage_attempt_factory("lost", lossy.claim("lost", "b0", 60.0)["index"])
        with pytest.raises(StorageUnavailable):
            lossy.store_attempt(record, images)
        assert relay.dropped == 1
        doc = direct.attempt(record["attempt_key"])
        for name, data in images.items():
            assert direct.image(doc["images"][name]) == data
        assert lossy.store_attempt(record, images) == (record["attempt_key"], False)
        assert direct.db["images.files"].count_documents({}) == len(images)
        assert [w["state"] for w in direct.work_items("lost")] == ["done"]
    finally:
        direct.client.drop_database(db)
        direct.close()
        lossy.close()
        relay.close()
