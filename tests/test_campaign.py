"""Many back ends on one campaign: exact counts under kill -9 of a back end and a database outage."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import WS, collect_command, free_port

from myriad_storage.server import LocalServer
from myriad_storage.store import Store


def start_collect(uri: str, *args: str) -> subprocess.Popen:
    cmd = collect_command(uri, *args)
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # the database may be down on purpose
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        raise AssertionError(f"collect did not finish:\n{out[-3000:]}") from None
    assert proc.returncode == 0, out[-3000:]
    return out


def assert_exact(store: Store, campaign: str, n: int) -> None:
    docs = store.attempts({"campaign": campaign})
    keys = [d["attempt_key"] for d in docs]
    assert len(docs) == n and len(set(keys)) == n
    assert sorted(d["item_index"] for d in docs) == list(range(n))
    p = store.progress(campaign)
    assert p["done"] == n and p["pending"] == 0 and p["leased"] == 0


@pytest.fixture
def server(tmp_path):
    s = LocalServer(tmp_path / "db", port=free_port())
    s.ensure_running()
    yield s
    s.stop()


def test_three_backends_thirty_attempts_survive_kill_9(server):
    proc = start_collect(server.uri, "--backends", "3", "--attempts", "30", "--name", "c30", "--quiet")
    store = Store(server.uri, "t")
    # Mid-campaign, kill -9 the process of one back end (all its nodes) while it works on an item.
    wait_for(lambda: store.progress("c30")["attempts"] >= 4, 120, "the first attempts")
    victim = next(b for b in store.backends("c30") if b.get("pid") and b.get("current_item"))
    os.kill(victim["pid"], signal.SIGKILL)
    out = finish(proc, 300)
    assert f"back end {victim['backend']}: backend (exit -9); restarted" in out
    assert_exact(store, "c30", 30)
    assert {d["backend"] for d in store.attempts({"campaign": "c30"})} == {"b0", "b1", "b2"}


def test_database_outage_loses_nothing(server):
    proc = start_collect(server.uri, "--backends", "2", "--attempts", "12", "--name", "outage", "--quiet")
    store = Store(server.uri, "t", server_timeout_ms=2000)
    wait_for(lambda: store.progress("outage")["attempts"] >= 2, 120, "the first attempts")
    server.stop()
    time.sleep(10)
    server.ensure_running()
    out = finish(proc, 300)
    assert "database unreachable" in out
    assert_exact(Store(server.uri, "t"), "outage", 12)


def test_crash_looping_backend_stops_the_run_with_its_logs(server, tmp_path):
    desc = (
        (WS / "config" / "backend.yaml")
        .read_text()
        .replace("${ws}/config/planning.yaml", str(tmp_path / "none.yaml"))
    )
    (tmp_path / "backend.yaml").write_text(desc)
    name = f"crashing-{tmp_path.name}"
    proc = start_collect(
        server.uri, "--attempts", "2", "--name", name, "--description", str(tmp_path / "backend.yaml")
    )
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 1, out[-2000:]
    assert "back end b0 died 6 times in a row with no attempt stored" in out
    (log,) = (WS / "log" / "runs" / name).glob("*/b0/backend.log")
    assert "none.yaml: file not found" in log.read_text()
    assert f"see its logs in {log.parent}; first error: [" in out and "fatal:" in out
    assert "none.yaml: file not found" in out
