"""Many back ends on one campaign: exact counts under kill -9 of a back end and a database outage."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import WS, wait_for

from myriad_storage.store import StorageUnavailable, Store


def finish(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        raise AssertionError(f"collect did not finish:\n{log.read_text()[-3000:]}") from None
    out = log.read_text()
    assert proc.returncode == 0, out[-3000:]
    return out


def backend_logs(runs: Path) -> str:
    return "".join(p.read_text() for p in runs.glob("*/b*/backend.log"))  # <campaign>/<database>-<server>/bN


def assert_exact(store: Store, campaign: str, n: int) -> None:
    docs = store.attempts({"campaign": campaign})
    keys = [d["attempt_key"] for d in docs]
    assert len(docs) == n and len(set(keys)) == n
    assert sorted(d["item_index"] for d in docs) == list(range(n))
    p = store.progress(campaign)
    assert p["done"] == n and p["pending"] == 0 and p["leased"] == 0


@pytest.mark.timeout(600)  # its waits: 120 s for the first attempts + 300 s for the run
def test_three_backends_thirty_attempts_survive_kill_9(storage_local_server, start_collect, tmp_path):
    server = storage_local_server
    log = tmp_path / "collect.log"
    proc = start_collect(server.uri, log, "--backends", "3", "--attempts", "30", "--name", "c30", "--quiet")
    store = Store(server.uri, "t")
    # Mid-campaign, kill -9 the process of one back end (all its nodes) while it works on an item.
    wait_for(
        lambda: store.progress("c30")["attempts"] >= 4,
        120,
        "the first attempts",
        tolerate=(StorageUnavailable,),
    )
    busy: list[dict] = []  # back ends whose last heartbeat (every 2 s) names the item they work on

    def at_work() -> bool:
        busy[:] = [b for b in store.backends("c30") if b.get("pid") and b.get("current_item")]
        return bool(busy)

    wait_for(at_work, 60, "a heartbeat naming the item its back end works on", tolerate=(StorageUnavailable,))
    victim = busy[0]
    os.kill(victim["pid"], signal.SIGKILL)
    out = finish(proc, log, 300)
    assert f"back end {victim['backend']}: backend (exit -9); restarted" in out
    assert_exact(store, "c30", 30)
    assert {d["backend"] for d in store.attempts({"campaign": "c30"})} == {"b0", "b1", "b2"}


@pytest.mark.timeout(900)  # its waits: 4 x 120 s around the outage + 300 s for the run
def test_database_outage_loses_nothing(storage_local_server, start_collect, tmp_path):
    """Attempts finished while the database is down go through the loggers' spools, and are stored once
    the database is back: no work item is claimed twice (a dropped attempt would be redone after its
    lease expired, giving the same count)."""
    server = storage_local_server
    name = f"outage-{uuid.uuid4().hex[:8]}"
    runs = WS / "log" / "runs" / name
    log = tmp_path / "collect.log"
    proc = start_collect(server.uri, log, "--backends", "2", "--attempts", "12", "--name", name, "--quiet")
    store = Store(server.uri, "t", server_timeout_ms=2000)
    wait_for(
        lambda: (p := store.progress(name))["attempts"] >= 2 and p["leased"] >= 1,
        120,
        "attempts in flight",
        tolerate=(StorageUnavailable,),  # its client gives up after 2 s: a busy server is no failure
    )
    server.stop()
    # Down until an accepted attempt is in a spool and its logger's writer failed to store it.
    wait_for(
        lambda: any(runs.glob("*/b*/spool/*.bson")), 120, "an attempt spooled while the database is down"
    )
    wait_for(lambda: "database unreachable at" in backend_logs(runs), 120, "a logger to report the outage")
    wait_for(lambda: "database unreachable" in log.read_text(), 120, "the front end to notice the outage")
    server.ensure_running()
    finish(proc, log, 300)
    store = Store(server.uri, "t")
    assert_exact(store, name, 12)
    assert [w["claims"] for w in store.work_items(name)] == [1] * 12
    logs = backend_logs(runs)
    flushed = [int(n) for n in re.findall(r"database back: flushed (\d+)", logs)]
    assert flushed and max(flushed) >= 1, logs[-3000:]
    assert not any(runs.glob("*/b*/spool/*.bson"))


def test_crash_looping_backend_stops_the_run_with_its_logs(storage_local_server, start_collect, tmp_path):
    server = storage_local_server
    desc = (
        (WS / "config" / "backend.yaml")
        .read_text()
        .replace("${ws}/config/planning.yaml", str(tmp_path / "none.yaml"))
    )
    (tmp_path / "backend.yaml").write_text(desc)
    name = f"crashing-{tmp_path.name}"
    log = tmp_path / "collect.log"
    proc = start_collect(
        server.uri, log, "--attempts", "2", "--name", name, "--description", str(tmp_path / "backend.yaml")
    )
    proc.wait(timeout=240)
    out = log.read_text()
    assert proc.returncode == 1, out[-2000:]
    assert "back end b0 died 6 times in a row with no attempt stored" in out
    log = Path(out.split("see its logs in ")[1].split(";")[0]) / "backend.log"
    assert log.is_relative_to(WS / "log" / "runs" / name)
    assert "none.yaml: file not found" in log.read_text()
    assert f"see its logs in {log.parent}; first error: [" in out and "fatal:" in out
    assert "none.yaml: file not found" in out
