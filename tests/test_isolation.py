"""Concurrent runs on one host are isolated by construction; stopping a run (Ctrl-C, SIGTERM) leaves nothing;
secrets never reach files, parameters or logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import WS, collect_command, free_port

from myriad_frontend.processes import abandoned_shared_memory
from myriad_runtime import workspace
from myriad_runtime.isolation import IsolationError, claim_domain
from myriad_storage.server import LocalServer
from myriad_storage.store import Store


@pytest.fixture
def db(storage_local_server):
    """URI of a database server of this test's own (conftest's storage_local_server)."""
    return storage_local_server.uri


def no_domain_env() -> dict[str, str]:
    """The environment of a user who has not chosen a ROS domain."""
    return {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=env or no_domain_env(),
    )  # fmt: skip


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def run_processes(campaign: str) -> list[int]:
    """Pids of back-end processes of a campaign (their command line names its parameter file)."""
    marker = f"/log/runs/{campaign}/".encode()
    pids = []
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                if marker in open(f"/proc/{proc}/cmdline", "rb").read():
                    pids.append(int(proc))
            except OSError:
                pass
    return pids


def test_domain_claims_exclude_each_other_and_die_with_their_holder():
    with claim_domain(run="a") as a, claim_domain(run="b") as b:
        assert a.domain_id != b.domain_id and 1 <= a.domain_id <= 232
        assert claim_domain(a.domain_id).domain_id == a.domain_id  # this process holds it already: shared
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from myriad_runtime.isolation import claim_domain; "
         "c = claim_domain(); print(c.domain_id, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    held = int(holder.stdout.readline())
    with pytest.raises(IsolationError, match=f"pid {holder.pid}"):
        claim_domain(held)
    holder.kill()  # kill -9: the kernel drops the lock
    holder.wait()
    claim_domain(held).release()


@pytest.mark.timeout(600)
def test_two_concurrent_collections_store_exactly_their_own(tmp_path):
    servers = [LocalServer(tmp_path / f"db{i}", port=free_port()) for i in range(2)]
    uris = [s.ensure_running() for s in servers]
    try:
        procs = [
            start(
                collect_command(uri, "--attempts", "4", "--backends", "1", "--seed", str(i), "--name", "same")
            )
            for i, uri in enumerate(uris)
        ]
        outs = [p.communicate(timeout=500)[0] for p in procs]
        domains = set()
        for p, out in zip(procs, outs):
            assert p.returncode == 0, out[-3000:]
            domains.add(out.split("ROS 2 domain ")[1].split(":")[0])
        assert len(domains) == 2, outs  # each run has its own DDS domain
        for uri in uris:
            docs = Store(uri, "t").attempts({"campaign": "same"})
            assert len(docs) == 4 and {d["seed"] for d in docs} == {
                w["seed"] for w in Store(uri, "t").work_items("same")
            }
    finally:
        for s in servers:
            s.stop()


def test_explicit_domain_held_by_another_run_is_refused(db):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from myriad_runtime.isolation import claim_domain; "
         "c = claim_domain(run='other'); print(c.domain_id, flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        held = int(holder.stdout.readline())
        out = subprocess.run(
            collect_command(db, "--attempts", "1"), capture_output=True, text=True, timeout=120,
            env={**no_domain_env(), "ROS_DOMAIN_ID": str(held)},
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"ROS_DOMAIN_ID {held} is in use by another Myriad run (pid {holder.pid}" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.timeout(400)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_a_collection_leaves_nothing_and_it_resumes(db, sig):
    name = f"stop-{sig.name.lower()}"
    proc = start(collect_command(db, "--attempts", "6", "--backends", "2", "--name", name, "--quiet"))
    store = Store(db, "t")
    deadline = time.monotonic() + 200
    while not (store.campaign(name) and store.progress(name)["attempts"] >= 1):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.3)
    children = run_processes(name)
    assert children
    os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C (whole group) or `kill`/systemd/Docker sends
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # and a second Ctrl-C while it cleans up
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out[-3000:]
    assert "interrupted:" in out and "Traceback" not in out, out[-3000:]
    assert not any(group_alive(p) for p in children)
    p = store.progress(name)
    assert p["leased"] == 0 and p["done"] < 6  # leases released, not left to expire
    assert not abandoned_shared_memory(min_age=0.0)  # no Fast DDS files left behind
    resumed = subprocess.run(
        collect_command(db, "--attempts", "6", "--backends", "2", "--name", name, "--quiet"),
        capture_output=True, text=True, timeout=300, env=no_domain_env(),
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    docs = store.attempts({"campaign": name})
    assert sorted(d["item_index"] for d in docs) == list(range(6))  # each item exactly once


@pytest.mark.timeout(300)
def test_database_password_never_reaches_files_parameters_or_logs(tmp_path):
    port = free_port()
    server = LocalServer(tmp_path / "db", port=port)
    server.ensure_running()
    admin = Store(server.uri, "admin")
    admin.db.command("createUser", "myriad", pwd="s3cr3t-pw", roles=["root"])
    server.stop()
    auth = subprocess.Popen(
        [str(WS / ".venv" / "bin" / "secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", str(tmp_path / "db" / "db"), "--auth"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        uri = f"mongodb://myriad:s3cr3t-pw@127.0.0.1:{port}/?authSource=admin"
        deadline = time.monotonic() + 30
        while True:
            try:
                Store(uri, "t", server_timeout_ms=1000).ping()
                break
            except Exception:
                assert time.monotonic() < deadline
                time.sleep(0.3)
        name = f"secret-{port}"
        proc = start(collect_command(uri, "--attempts", "6", "--name", name), env=dict(os.environ))
        probe = subprocess.run(  # what `ros2 param list` shows while the back end collects
            [sys.executable, str(WS / "tests" / "ros_probe.py"), "--wait", "/myriad/b0/logger",
             "--list", "/myriad/b0/logger"],
            capture_output=True, text=True, timeout=200,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stdout + probe.stderr[-2000:]
        names = json.loads(probe.stdout)["list"]["/myriad/b0/logger"]
        assert "campaign" in names and not any("uri" in n for n in names)
        out = proc.communicate(timeout=240)[0]
        assert proc.returncode == 0, out[-3000:]
        assert "s3cr3t-pw" not in out and "myriad:***@" in out
        run_dir = workspace() / "log" / "runs" / name  # where the CLI writes its runs
        files = [f for f in run_dir.rglob("*") if f.is_file()]
        assert files, f"no run files under {run_dir}"
        for f in files:
            assert b"s3cr3t-pw" not in f.read_bytes(), f
        assert len(Store(uri, "t").attempts({"campaign": name})) == 6
    finally:
        auth.terminate()
        auth.wait(20)
