"""`myriad collect --ray` on a real 2-node Ray cluster on loopback, with the full ROS back end in the actors.

Ray rewrites 127.0.0.1 (as a node address or in `--address`) to the host's network address, so the nodes use
other loopback addresses: head 127.0.0.2, second node 127.0.0.3. Token authentication stays on (a token file
made for the cluster). The cluster's processes run in their own sessions and are ended by session id.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

# Token authentication on for this process too: Ray reads RAY_AUTH_MODE when imported (and never turns it on by
# itself for an explicit address). The token file is written by the cluster fixture.
_ROOT = Path(f"/tmp/myray-{os.getpid()}-{secrets.token_hex(3)}")  # short: Ray's socket paths stay < 108 chars
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(_ROOT / "auth_token"))
ray = pytest.importorskip("ray")

from myriad_frontend.campaign import make_spec  # noqa: E402
from myriad_frontend.ray_runner import run_ray  # noqa: E402
from myriad_runtime.isolation import IsolationError, claim_domain  # noqa: E402
from myriad_storage.store import Store  # noqa: E402

WS = Path(__file__).resolve().parents[1]
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"
pytestmark = pytest.mark.timeout(180)


def _port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> int:
    """Run `ray start ...` in a new session; return that session id (its daemons keep it)."""
    with open(log, "ab") as out:
        p = subprocess.Popen([shutil.which("ray") or "ray", "start", *args], env=env, stdout=out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    sid = p.pid
    if p.wait(timeout=90) != 0:
        raise RuntimeError(f"ray start failed; see {log}:\n{log.read_text()[-3000:]}")
    return sid


def _end_sessions(sids: set[int]) -> None:
    """SIGTERM, then SIGKILL, every process of these sessions (the cluster's, not any other Ray)."""

    def members() -> list[psutil.Process]:
        out = []
        for p in psutil.process_iter():
            try:
                if os.getsid(p.pid) in sids and p.pid != os.getpid() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except (ProcessLookupError, PermissionError, psutil.Error):
                pass
        return out

    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        for p in members():
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        deadline = time.monotonic() + grace
        while members() and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def ray_cluster():
    """A head (127.0.0.2) and a second node (127.0.0.3), 1 CPU each, token auth on; yields the address."""
    root = _ROOT
    root.mkdir(parents=True, exist_ok=True)
    (root / "auth_token").write_text(secrets.token_hex(32))
    saved = os.environ.get("MYRIAD_RUN_DIR")
    os.environ["MYRIAD_RUN_DIR"] = str(root / "runs")  # the actors' run directories (inherited by the nodes)
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1"}
    port = _port(HEAD_IP)
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    sids: set[int] = set()
    try:
        sids.add(_ray_start(["--head", "--node-ip-address", HEAD_IP, "--port", str(port),
                             "--temp-dir", str(root / "head"), "--include-dashboard", "false",
                             "--ray-client-server-port", str(_port(HEAD_IP)),
                             "--dashboard-agent-listen-port", str(_port(HEAD_IP)), *common],
                            env, root / "head.log"))  # fmt: skip
        sids.add(_ray_start(["--address", f"{HEAD_IP}:{port}", "--node-ip-address", NODE_IP,
                             "--temp-dir", str(root / "node"),
                             "--dashboard-agent-listen-port", str(_port(NODE_IP)), *common],
                            env, root / "node.log"))  # fmt: skip
        yield {"address": f"{HEAD_IP}:{port}", "root": root}
    finally:
        _end_sessions(sids)
        os.environ.pop("MYRIAD_RUN_DIR", None) if saved is None else os.environ.update(MYRIAD_RUN_DIR=saved)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def db(request, mongo_uri):
    """(uri, Store) on a fresh database: the session server if it listens on 127.0.0.1, else a local one."""
    uri = mongo_uri
    if not uri.startswith("mongodb://127.0.0.1:"):
        uri = request.getfixturevalue("storage_local_server").uri
    name = f"test_ray_{uuid.uuid4().hex[:8]}"
    store = Store(uri, name, server_timeout_ms=5000)
    yield uri, store
    store.client.drop_database(name)
    store.close()


def _backend_procs(root: Path) -> list[psutil.Process]:
    """Back-end processes of this cluster's runs (their params file lies under root)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if (
            any(str(root) in a for a in p.info["cmdline"] or [])
            and "myriad_runtime.container" in p.info["cmdline"]
        ):
            out.append(p)
    return out


def _check_campaign(store: Store, campaign: str, attempts: int) -> None:
    docs = store.attempts({"campaign": campaign})
    assert len(docs) == attempts
    assert len({d["attempt_key"] for d in docs}) == attempts
    assert {i["state"] for i in store.work_items(campaign)} == {"done"}


def _actor_info(root: Path, campaign: str, backend: str) -> dict:
    """What the back end's actor recorded about itself (node, worker pid, processes), or {}."""
    try:
        return json.loads((root / "runs" / campaign / backend / "actor.json").read_text())
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_ray_campaign_on_two_nodes(ray_cluster, db):
    uri, store = db
    spec = make_spec(f"ray2n{uuid.uuid4().hex[:6]}", 0, 4, {})
    claims: dict[str, str] = {}  # what claiming a running back end's DDS domain from here gave

    def claim_their_domains() -> None:
        deadline = time.monotonic() + 120
        while len(claims) < 2 and time.monotonic() < deadline:
            for b in {"b0", "b1"} - set(claims):
                info = _actor_info(ray_cluster["root"], spec.name, b)
                if info.get("procs"):
                    try:
                        claim_domain(info["domain_id"], run="probe").release()
                        claims[b] = "claimed"
                    except IsolationError:
                        claims[b] = "refused"
            time.sleep(0.2)

    threading.Thread(target=claim_their_domains, daemon=True).start()
    t0 = time.monotonic()
    result = run_ray(
        store, spec, uri, store.db.name, 2, WS / "config" / "backend.yaml", ray_cluster["address"]
    )
    print(f"campaign of 4 on 2 nodes: {time.monotonic() - t0:.1f} s, result {result}")
    assert not result.interrupted and result.done == 4
    _check_campaign(store, spec.name, 4)
    info = [_actor_info(ray_cluster["root"], spec.name, b) for b in ("b0", "b1")]
    assert sorted(i["node_ip"] for i in info) == [HEAD_IP, NODE_IP]  # num_cpus=1 each: one back end per node
    assert info[0]["domain_id"] != info[1]["domain_id"]  # DDS of the two back ends kept apart
    # ... and from every other run on the host: each back end holds its domain while it runs (another run
    # sharing it would serve the same actions under /myriad/bN, and both stall).
    assert claims == {"b0": "refused", "b1": "refused"}, claims
    assert {b["backend"] for b in store.backends(spec.name)} == {"b0", "b1"}  # heartbeats from both
    assert not ray.is_initialized()
    assert psutil.wait_procs(_backend_procs(ray_cluster["root"]), timeout=5)[1] == []  # no orphans


def _lease(store: Store, campaign: str, backend: str) -> dict:
    """The work item `backend` took or renewed a lease on last ({} if it holds none)."""
    held = [i for i in store.work_items(campaign, state="leased") if i["lease_owner"] == backend]
    return max(held, key=lambda i: i["lease_expires"], default={})


def _working_on(store: Store, campaign: str, backend: str) -> str:
    """The item `backend` holds a lease on now ("" if none)."""
    return _lease(store, campaign, backend).get("item_id", "")


def _released(text: str, backend: str) -> int:
    """Leases the front end reported released for `backend`, summed over its notes in `text`."""
    return sum(int(n) for n in re.findall(rf"back end {backend}: .*, (\d+) lease\(s\) released", text))


def _run_while(kill: Callable[[threading.Event], None], store, spec, uri: str, address: str):
    """run_ray's result, `kill(ended)` running on a thread of its own meanwhile; `ended` is set when the run has
    ended, and `kill` must then stop (no kill after the run, nor a database read after the test)."""
    ended = threading.Event()
    thread = threading.Thread(target=kill, args=(ended,), daemon=True)
    thread.start()
    try:
        return run_ray(store, spec, uri, store.db.name, 2, WS / "config" / "backend.yaml", address)
    finally:
        ended.set()
        thread.join(timeout=5)


@pytest.mark.timeout(400)
def test_ray_killed_actor_is_restarted(ray_cluster, db, capsys):
    uri, store = db
    spec = make_spec(f"raykill{uuid.uuid4().hex[:6]}", 1, 8, {})
    killed: dict = {}

    def kill_b1(
        ended: threading.Event,
    ) -> None:  # kill -9 the worker process of b1's actor while it holds a lease
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not ended.is_set():
            info = _actor_info(ray_cluster["root"], spec.name, "b1")
            if info.get("procs") and store.count_attempts({"campaign": spec.name}) >= 1:
                item = _working_on(store, spec.name, "b1")
                if item:
                    os.kill(info["pid"], signal.SIGKILL)
                    killed.update(info, item=item)
                    return
            time.sleep(0.2)

    t0 = time.monotonic()
    result = _run_while(kill_b1, store, spec, uri, ray_cluster["address"])
    print(f"campaign of 8 with b1's actor killed: {time.monotonic() - t0:.1f} s, result {result}")
    assert killed, "the test did not get to kill b1's actor"
    assert not result.interrupted and result.done == 8
    _check_campaign(store, spec.name, 8)
    assert result.restarts["b1"] >= 1 and result.restarts["b0"] == 0
    assert _actor_info(ray_cluster["root"], spec.name, "b1")["incarnation"] != killed["incarnation"]
    # The killed worker's back-end processes died with it (not orphaned), and nothing is left now.
    assert not any(_alive(p["pid"]) for p in killed["procs"])
    assert psutil.wait_procs(_backend_procs(ray_cluster["root"]), timeout=5)[1] == []
    # Its lease was released by the front end at once (not left to expire): the item was claimed again.
    out = capsys.readouterr()
    assert re.search(r"back end b1: .*, [1-9]\d* lease\(s\) released", out.out + out.err), out.out + out.err
    # (which item: the one b1 held at the kill, possibly claimed just after `killed["item"]` was read)
    assert sorted(i["claims"] for i in store.work_items(spec.name))[-1] == 2


@pytest.mark.timeout(400)
def test_ray_actor_restarts_are_capped(ray_cluster, db, monkeypatch, capsys):
    """With max_restarts 1, b1's actor killed twice (each time while that incarnation's back end holds a lease)
    stays dead: no more pings, its lease released at once; b0 completes the campaign."""
    from myriad_frontend import ray_runner

    monkeypatch.setattr(ray_runner, "MAX_RESTARTS", 1)
    uri, store = db
    # 24 items: with 8, b0 finished the campaign while b1's restarted actor was starting (a fast host, seen in CI)
    items = 24
    spec = make_spec(f"raycap{uuid.uuid4().hex[:6]}", 2, items, {})
    kills: list[dict] = []

    def kill_b1_twice(ended: threading.Event) -> None:
        deadline, stale = time.monotonic() + 150, None
        while len(kills) < 2 and time.monotonic() < deadline and not ended.is_set():
            info = _actor_info(ray_cluster["root"], spec.name, "b1")
            fresh = info.get("procs") and all(info["incarnation"] != k["incarnation"] for k in kills)
            lease = _lease(store, spec.name, "b1")
            # A lease of this incarnation: taken or renewed after the last kill (the killed one's ends earlier).
            if fresh and lease and (stale is None or lease["lease_expires"] > stale) and _alive(info["pid"]):
                os.kill(info["pid"], signal.SIGKILL)
                kills.append(info)
                stale = max(
                    lease["lease_expires"], _lease(store, spec.name, "b1").get("lease_expires", stale)
                )
            time.sleep(0.2)

    result = _run_while(kill_b1_twice, store, spec, uri, ray_cluster["address"])
    assert len(kills) == 2, "the test did not get to kill b1's actor twice"
    assert not result.interrupted and result.done == items
    _check_campaign(store, spec.name, items)
    assert result.restarts["b1"] == 1  # one new incarnation, none after the second kill
    assert _actor_info(ray_cluster["root"], spec.name, "b1")["incarnation"] == kills[1]["incarnation"]
    assert psutil.wait_procs(_backend_procs(ray_cluster["root"]), timeout=5)[1] == []
    out = capsys.readouterr()
    text = out.out + out.err
    assert "back end b1: actor dead for good" in text, text
    assert _released(text, "b1") >= 2, text  # each kill's lease handed back at once, not left to expire


@pytest.mark.timeout(300)
def test_run_ends_when_every_actor_is_dead_for_good(ray_cluster, db, monkeypatch, capsys):
    """With max_restarts 0, the only back end's actor killed while it holds a lease ends the run at once
    (a failed run: the CLI exits 1; its lease released), instead of waiting for an actor Ray will not restart."""
    from myriad_frontend import ray_runner

    monkeypatch.setattr(ray_runner, "MAX_RESTARTS", 0)
    monkeypatch.setattr(ray_runner, "LOST_AFTER_S", 3600.0)  # only knowing it dead can end the run in time
    uri, store = db
    spec = make_spec(f"raydead{uuid.uuid4().hex[:6]}", 3, 4, {})
    killed: dict = {}

    def kill_b0() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            info = _actor_info(ray_cluster["root"], spec.name, "b0")
            if info.get("procs") and _working_on(store, spec.name, "b0"):
                os.kill(info["pid"], signal.SIGKILL)
                killed.update(info)
                return
            time.sleep(0.2)

    threading.Thread(target=kill_b0, daemon=True).start()
    result = run_ray(
        store, spec, uri, store.db.name, 1, WS / "config" / "backend.yaml", ray_cluster["address"]
    )
    assert killed, "the test did not get to kill b0's actor"
    assert result.failed and not result.interrupted and result.done < 4  # the CLI exits 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "every back end's actor is dead and no longer restarted" in text, text
    assert _released(text, "b0") >= 1 and store.work_items(spec.name, state="leased") == [], text
    assert not ray.is_initialized()
    assert psutil.wait_procs(_backend_procs(ray_cluster["root"]), timeout=5)[1] == []
