"""The logger node in its own process (real rclpy, real DB): claim, store, heartbeat, status, lease renewal,
clean SIGINT exit."""

import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
pytest.importorskip("myriad_interfaces.msg", reason="source scripts/env.sh (built interfaces)")
from conftest import wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from myriad_interfaces.msg import BackendStatus, GraspAttempt  # noqa: E402
from myriad_interfaces.srv import ClaimWork, StoreAttempt  # noqa: E402
from myriad_storage.store import Store  # noqa: E402

LEASE_S = 3.0


@pytest.fixture
def logger_process(mongo_uri, tmp_path, node_procs):
    """The logger node (namespace /t<hex>, lease 3 s) started as the front end starts nodes; yields
    (proc, namespace, database, log path). Stopped by node_procs (SIGINT to its group, then SIGKILL)."""
    ns = f"/t{uuid.uuid4().hex[:8]}"
    db = f"test_{ns[1:]}"
    Store(mongo_uri, db).create_campaign("ln", [{"seed": 10 + i} for i in range(2)])
    params = {
        "database": db,
        "campaign": "ln",
        "heartbeat_period": 0.3,
        "lease_s": LEASE_S,
        "spool_dir": str(tmp_path / "spool"),
    }
    env = {"MYRIAD_MONGO_URI": mongo_uri}  # a secret: environment only, never a parameter
    proc = node_procs(
        ["myriad_storage.logger_node:LoggerNode"], ns, {"logger": params}, log="logger.log", env=env
    )
    try:
        yield proc, ns, db, tmp_path / "logger.log"
    finally:
        Store(mongo_uri, db).client.drop_database(db)


def attempt_msg(item, executed: bool = True):
    """A GraspAttempt for `item`; when not `executed` (no grasp could be planned) it carries no label."""
    h, w = 16, 20
    rgb = np.full((h, w, 3), 200, np.uint8)
    m = GraspAttempt(
        attempt_key=f"{item.item_id}/0",
        campaign=item.campaign,
        item_id=item.item_id,
        item_index=item.item_index,
        seed=item.seed,
        params_json=item.params_json,
        extra_json=json.dumps({"grasp_executed": executed}),
        success=executed,
    )
    m.pre_rgb = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=rgb.tobytes())
    depth = np.full((h, w), 0.8, np.float32)
    m.pre_depth = Image(height=h, width=w, encoding="32FC1", step=w * 4, data=depth.tobytes())
    return m


def wait_done(store: Store, n: int) -> None:
    """Wait (up to 30 s) until `n` items of campaign "ln" are done."""
    wait_for(lambda: store.progress("ln")["done"] >= n, 30, f'{n} items of campaign "ln" done')


def leases(store: Store) -> dict[str, tuple[str, int]]:
    """The leased items of campaign "ln": item id -> (owner, times claimed)."""
    return {
        w["item_id"]: (w["lease_owner"], w["claims"])
        for w in store.work_items("ln")
        if w["state"] == "leased"
    }


def test_logger_node_claims_stores_and_reports(logger_process, mongo_uri, ros_client):
    proc, ns, db, log_path = logger_process
    client = ros_client(ns)
    me = ns[1:]
    with Store(mongo_uri, db) as s:
        others = [
            s.claim("ln", "someone_else", 60.0) for _ in range(2)
        ]  # every item leased to another back end
    none_left = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert not none_left.available and not none_left.done and "2 leased" in none_left.message, (
        log_path.read_text()
    )
    with Store(mongo_uri, db) as s:
        assert all(s.release(o["item_id"], "someone_else") for o in others)
    first = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert first.available and (first.item_id, first.seed) == ("ln/000000", 10), log_path.read_text()
    assert json.loads(first.params_json) == {"seed": 10}
    # While the sampler works on it, the logger leases the next item ahead.
    with Store(mongo_uri, db) as s:
        wait_for(lambda: leases(s) == {"ln/000000": (me, 2), "ln/000001": (me, 2)}, 30, "item 1 leased ahead")
    # A claim while the back end holds an unstored item (its answer lost, its attempt failed) gets that item again;
    # the one leased ahead went back too, and is leased ahead again.
    again = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert (again.item_id, again.seed) == (first.item_id, first.seed), again
    with Store(mongo_uri, db) as s:
        wait_for(lambda: leases(s) == {"ln/000000": (me, 3), "ln/000001": (me, 3)}, 30, "item 1 leased again")
    assert log_path.read_text().count("claimed but not stored") == 1
    res = client.call(StoreAttempt, "store_attempt", StoreAttempt.Request(attempt=attempt_msg(first)))
    assert res.accepted and not res.buffered, res.message
    with Store(mongo_uri, db) as s:
        wait_done(s, 1)  # the logger writes in the background
    # The next claim hands out the item leased ahead: no claim of it at this request (still claimed 3 times).
    second = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert (second.item_id, second.seed) == ("ln/000001", 11), second
    with Store(mongo_uri, db) as s:
        assert leases(s) == {"ln/000001": (me, 3)}
    # An attempt whose grasp was never executed has no label (success None): it counts, and the node goes on.
    res = client.call(StoreAttempt, "store_attempt", StoreAttempt.Request(attempt=attempt_msg(second, False)))
    assert res.accepted and not res.buffered, res.message
    assert log_path.read_text().count("claimed but not stored") == 1
    with Store(mongo_uri, db) as s:
        wait_done(s, 2)
        assert s.progress("ln")["attempts"] == 2
        doc = s.attempt("ln/000000/0")
        assert doc["backend"] == ns[1:] and set(doc["images"]) == {"pre_rgb", "pre_depth"}
        assert doc["success"] is True and s.attempt("ln/000001/0")["success"] is None
    assert client.call(ClaimWork, "claim_work", ClaimWork.Request()).done
    status = client.wait_message(BackendStatus, "status", lambda m: m.attempts == 2, timeout=30)
    assert status.backend == ns[1:] and status.successes == 1

    os.killpg(proc.pid, signal.SIGINT)  # the production shutdown path: no handler installed by the test
    assert proc.wait(30) == 0, log_path.read_text()
    with Store(mongo_uri, db) as s:
        (hb,) = s.backends("ln")
    assert hb["backend"] == ns[1:] and hb["state"] == "stopped" and hb["attempts"] == 2
    assert hb["pending_writes"] == 0 and hb["last_error"] == ""


def test_an_attempt_mongodb_cannot_hold_is_rejected_and_the_logger_goes_on(logger_process, ros_client):
    """An integer beyond 64 bits in params_json ended the logger's process (its spool's BSON encoding raised in
    the service callback); now the attempt is rejected by name and the next request is served."""
    proc, ns, _db, log_path = logger_process
    client = ros_client(ns)
    item = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert item.available, log_path.read_text()
    bad = attempt_msg(item)
    bad.params_json = json.dumps({"seed": 2**70})
    res = client.call(StoreAttempt, "store_attempt", StoreAttempt.Request(attempt=bad))
    assert not res.accepted and "params_json cannot be stored in MongoDB" in res.message, res.message
    res = client.call(StoreAttempt, "store_attempt", StoreAttempt.Request(attempt=attempt_msg(item)))
    assert res.accepted and proc.poll() is None, res.message


@pytest.mark.parametrize(
    "name, value", [("lease_s", float("inf")), ("lease_s", 1e12), ("db_timeout_s", -1.0)]
)
def test_unusable_periods_are_refused_at_start_by_name(mongo_uri, node_procs, name, value):
    """lease_s .inf passed the > 0 check and ended the logger at its first claim (a lease end past year 9999)."""
    params = {"database": "t", "campaign": "ln", name: value}
    proc = node_procs(["myriad_storage.logger_node:LoggerNode"], f"/t{uuid.uuid4().hex[:8]}", {"logger": params},
                      log="bad.log", env={"MYRIAD_MONGO_URI": mongo_uri})  # fmt: skip
    assert proc.wait(60) != 0
    log = (node_procs.directory / "bad.log").read_text()
    assert f"parameter '{name}' must be > 0 and at most 86400 seconds" in log, log[-2000:]


def test_logger_renews_the_lease_of_the_item_in_work(logger_process, mongo_uri, ros_client):
    """An item the back end works on stays leased past its lease time: the logger renews it (and the one leased
    ahead) in the background, and nobody else can claim them."""
    _proc, ns, db, log_path = logger_process
    client = ros_client(ns)
    item = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert item.available, log_path.read_text()
    with Store(mongo_uri, db) as s:
        (doc,) = [w for w in s.work_items("ln") if w["item_id"] == item.item_id]
        first_expiry = doc["lease_expires"].replace(tzinfo=UTC)
        deadline = time.monotonic() + 60
        renewed = []  # wait until well past the first lease's expiry, noting each renewal
        while time.monotonic() < deadline and datetime.now(UTC) < first_expiry + timedelta(seconds=1):
            (doc,) = [w for w in s.work_items("ln") if w["item_id"] == item.item_id]
            if doc["lease_expires"].replace(tzinfo=UTC) > (renewed or [first_expiry])[-1]:
                renewed.append(doc["lease_expires"].replace(tzinfo=UTC))
            time.sleep(0.2)
        (doc,) = [w for w in s.work_items("ln") if w["item_id"] == item.item_id]
        assert len(renewed) >= 2 and doc["lease_expires"].replace(tzinfo=UTC) > datetime.now(UTC), renewed
        assert doc["state"] == "leased" and doc["lease_owner"] == ns[1:] and doc["claims"] == 1
        # The other item is leased ahead, renewed as well: nothing is free.
        assert leases(s) == {item.item_id: (ns[1:], 1), "ln/000001": (ns[1:], 1)}
        assert s.claim("ln", "someone_else", 60.0) is None


def test_sigterm_to_the_container_stops_it_cleanly(logger_process, mongo_uri, ros_client):
    """SIGTERM (what `kill`, systemd, Docker and launch send) to the node container alone: the same ordered
    shutdown as SIGINT. It exits 0, its last heartbeat says stopped, and the lease it held is handed back."""
    proc, ns, db, log_path = logger_process
    client = ros_client(ns)
    item = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert item.available, log_path.read_text()
    os.kill(proc.pid, signal.SIGTERM)  # the process only, not its group
    assert proc.wait(30) == 0, log_path.read_text()
    with Store(mongo_uri, db) as s:
        (hb,) = s.backends("ln")
        (doc,) = [w for w in s.work_items("ln") if w["item_id"] == item.item_id]
    assert hb["backend"] == ns[1:] and hb["state"] == "stopped", hb
    assert doc["state"] == "pending" and doc["lease_owner"] is None and doc["claims"] == 1, doc


def test_a_claim_waiting_on_a_dead_database_blocks_no_other_callback(tmp_path, node_procs, ros_client):
    """The logger's database calls for a claim wait out the client's timeout (3 s) in an outage; meanwhile the
    back end's one executor thread, and the logger's other callbacks, keep serving: a store is answered (queued)
    while the claim is still waiting."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import free_port

    ns = f"/t{uuid.uuid4().hex[:8]}"
    params = {"database": "down", "campaign": "ln", "db_timeout_s": 3.0, "spool_dir": str(tmp_path / "spool")}
    env = {"MYRIAD_MONGO_URI": f"mongodb://127.0.0.1:{free_port()}"}  # nothing listens there
    node_procs(["myriad_storage.logger_node:LoggerNode"], ns, {"logger": params}, log="logger.log", env=env)
    client = ros_client(ns)
    item = ClaimWork.Response(campaign="ln", item_id="ln/000000", item_index=0, seed=10, params_json="{}")
    client.call(StoreAttempt, "store_attempt", StoreAttempt.Request(attempt=attempt_msg(item)))  # discovered
    claimed_at: list[float] = []
    with ThreadPoolExecutor(1) as pool:
        claim = pool.submit(client.call, ClaimWork, "claim_work", ClaimWork.Request())
        claim.add_done_callback(lambda _f: claimed_at.append(time.monotonic()))
        time.sleep(1.5)  # by then the claim is in the logger, waiting on the database
        started = time.monotonic()
        stored = client.call(StoreAttempt, "store_attempt", StoreAttempt.Request(attempt=attempt_msg(item)))
        stored_at = time.monotonic()
        pending = not claim.done()
        res = claim.result(timeout=60)
    assert stored.accepted, stored.message
    assert pending, f"the store was answered after the claim ({stored_at - started:.1f} s)"
    assert not res.available and "database unavailable" in res.message, res.message
    # The claim waited out db_timeout_s from before the store was answered, so it was in the logger while the store
    # was served (a claim arriving after the store would prove nothing about a blocked executor).
    assert claimed_at[0] - params["db_timeout_s"] < stored_at, (
        f"the claim reached the logger after the store ({claimed_at[0] - stored_at:.1f} s)"
    )


def test_after_an_outage_expired_leases_are_left_to_their_owners_for_a_lease(
    storage_local_server, tmp_path, node_procs, ros_client
):
    """An outage longer than a lease expires the leases of back ends that are alive (their finished attempts
    wait in their spools). Once the database is back, the logger claims pending items only for one lease length;
    after that, an expired lease is taken over (its owner may really be dead)."""
    lease_s = 6.0  # the grace: what the test does once the database is back must fit in it
    server = storage_local_server
    store = Store(server.uri, "outage")
    store.create_campaign("ln", [{"seed": 10 + i} for i in range(3)])
    ns = f"/t{uuid.uuid4().hex[:8]}"
    params = {"database": "outage", "campaign": "ln", "heartbeat_period": 0.3, "lease_s": lease_s,
              "db_timeout_s": 1.0, "spool_dir": str(tmp_path / "spool")}  # fmt: skip
    env = {"MYRIAD_MONGO_URI": server.uri}
    node_procs(["myriad_storage.logger_node:LoggerNode"], ns, {"logger": params}, log="logger.log", env=env)
    log_path = tmp_path / "logger.log"
    client = ros_client(ns)
    assert store.claim("ln", "someone_else", 60.0)["item_id"] == "ln/000000"
    first = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert first.item_id == "ln/000001", (first, log_path.read_text())
    wait_for(lambda: "ln/000002" in leases(store), 30, "item 2 leased ahead")
    client.call(StoreAttempt, "store_attempt", StoreAttempt.Request(attempt=attempt_msg(first)))
    wait_done(store, 1)
    assert store.renew("ln/000000", "someone_else", 1.0)  # its lease now ends during the outage
    server.stop()
    wait_for(lambda: "MongoDB not reachable" in log_path.read_text(), 30, "the logger to report the outage")
    time.sleep(1.5)  # someone_else's lease has expired, and nobody could renew it
    # The item leased ahead is handed out even while the database is down (its attempt would wait in the spool).
    ahead = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert ahead.available and ahead.item_id == "ln/000002", (ahead, log_path.read_text())
    server.ensure_running()
    res = client.call(StoreAttempt, "store_attempt", StoreAttempt.Request(attempt=attempt_msg(ahead)))
    assert res.accepted, res.message
    wait_done(store, 2)  # its writer stores it in the background: then only someone_else's item is leased
    deadline = time.monotonic() + 30
    while (
        "database unavailable" in (left := client.call(ClaimWork, "claim_work", ClaimWork.Request())).message
    ):
        assert time.monotonic() < deadline, left
        time.sleep(0.2)  # the client reconnects (as the sampler, it retries)
    assert not left.available and "1 leased" in left.message, (left, log_path.read_text())
    assert "left to their owners" in log_path.read_text()
    time.sleep(lease_s)
    taken = client.call(ClaimWork, "claim_work", ClaimWork.Request())
    assert taken.available and taken.item_id == "ln/000000", taken
    assert [w["claims"] for w in Store(server.uri, "outage").work_items("ln")] == [2, 1, 1]
