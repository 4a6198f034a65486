"""`myriad collect --ray`: one Ray actor per back end, owning that back end's process groups on its node.

An actor starts its back end's processes (plan.plan_backend, processes.BackendProcesses) on the node Ray placed
it on; DDS stays on that host (LOCALHOST discovery, a ROS_DOMAIN_ID per back end claimed on that host, so no two
runs or back ends there share one). The front end pings the
actors (`health()` returns a status dict: errors are values) and reads heartbeats from the database; Ray
restarts a dead actor (`max_restarts`), whose new incarnation kills what the old one left and starts the back
end again, while the front end releases the dead back end's leases and counts the restart. An actor Ray no longer
restarts (its restarts used up) is dead for good: its leases go back to the pool, the other back ends finish the
campaign, and the run fails at once if none is left.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import ray
from tqdm import tqdm

from myriad_frontend.campaign import CampaignSpec
from myriad_frontend.checks import check_worlds
from myriad_frontend.collect import CollectResult, finish, watch
from myriad_frontend.description import load_description
from myriad_frontend.plan import backend_env, plan_backend
from myriad_frontend.processes import BackendProcesses, clean_shared_memory
from myriad_frontend.run import release_leases, run_directory
from myriad_runtime import workspace
from myriad_runtime.isolation import DomainClaim, claim_domain, lock_run
from myriad_storage.store import StorageUnavailable, Store

NAMESPACE = "myriad"
CPUS_PER_BACKEND = float(os.environ.get("MYRIAD_RAY_CPUS", "1"))
MAX_RESTARTS = int(os.environ.get("MYRIAD_RAY_MAX_RESTARTS", "5"))
MAX_TASK_RETRIES = 2
PROBE_TIMEOUT_S = 3.0
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + empty SETTINGS
PING_TIMEOUT_S = 30.0  # a ping unanswered this long marks the actor unreachable
HEARTBEAT_STALE_S = 120.0  # a back end silent this long in the database is restarted by its actor
LOST_AFTER_S = 180.0  # every actor unreachable this long: give up
STOP_TIMEOUT_S = 30.0
CONFIRM_TIMEOUT_S = 10.0  # at the end of a run: a restarting actor answers within it


def actor_name(campaign: str, backend: str) -> str:
    """The name (in namespace NAMESPACE) of a back end's actor."""
    return f"{campaign}:{backend}"


# -- the actor: runs on the node Ray places it on ----------------------------------------------------------


def _reap(state_file: Path) -> None:
    """SIGKILL the process groups a previous incarnation recorded in `state_file` (if still the same processes)."""
    try:
        records = json.loads(state_file.read_text())["procs"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    procs = []
    for rec in records:
        try:
            p = psutil.Process(rec["pid"])
            if abs(p.create_time() - rec["created"]) < 0.01:
                os.killpg(rec["pid"], signal.SIGKILL)
                procs.append(p)
        except (psutil.Error, ProcessLookupError, PermissionError, KeyError, TypeError):
            pass
    if procs:
        psutil.wait_procs(procs, timeout=5.0)
        clean_shared_memory()


def _host_path(path: str, driver_ws: str, ws: str) -> Path:
    """`path` (on the driver's host) on this host: inside the driver's workspace maps into this workspace."""
    p = Path(path)
    return Path(ws) / p.relative_to(driver_ws) if p.is_relative_to(driver_ws) else p


class BackendActor:
    """One back end on this node. Ray restarts the actor (max_restarts); the actor restarts its back end."""

    def __init__(self, index: int, description: str, values: dict[str, str], uri: str) -> None:
        self.index, self.backend_id, self.domain = index, f"b{index}", -1
        self.incarnation, self.since, self.error = uuid.uuid4().hex[:12], time.time(), ""
        self.backend: BackendProcesses | None = None
        self.claim: DomainClaim | None = None
        ws = os.environ.get("MYRIAD_WS", values["ws"])
        runs = Path(os.environ.get("MYRIAD_RUN_DIR", f"{ws}/log/runs")) / values["campaign"]
        self.state_file = runs / self.backend_id / "actor.json"  # this actor's processes, for its successor
        _reap(self.state_file)
        try:
            desc = load_description(_host_path(description, values["ws"], ws))
            self.claim = claim_domain(run=f"{values['campaign']}:{self.backend_id}", workspace=ws)
            self.domain = self.claim.domain_id
            env = backend_env(ws, self.domain, uri)
            plans = plan_backend(desc, index, {**values, "ws": ws}, runs, env)
            self.backend = BackendProcesses(self.backend_id, plans)
            self.backend.start()
            self._record()
        except Exception as exc:  # reported by health(), never raised out of the actor
            self.error = f"{type(exc).__name__}: {exc}"

    def _record(self, running: bool = True) -> None:
        procs = self.backend.procs.items() if self.backend and running else []
        recs = [{"name": n, "pid": p.pid, "created": psutil.Process(p.pid).create_time()}
                for n, p in procs if p.poll() is None]  # fmt: skip
        info = {"backend": self.backend_id, "incarnation": self.incarnation, "host": socket.gethostname(),
                "node_ip": ray.util.get_node_ip_address(), "pid": os.getpid(), "domain_id": self.domain}  # fmt: skip
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({**info, "procs": recs}))

    def health(self, restart: str = "") -> dict[str, Any]:
        """Status of the back end; dead processes (or a `restart` reason) restart it first. Never raises."""
        status = {"backend": self.backend_id, "incarnation": self.incarnation, "host": socket.gethostname(),
                  "node_ip": ray.util.get_node_ip_address(), "pid": os.getpid(), "domain_id": self.domain,
                  "since": self.since, "revived": "", "restarts": 0, "processes": {}}  # fmt: skip
        try:
            if self.backend is not None:
                dead = self.backend.dead()
                if dead or restart:
                    self.backend.restart()
                    self._record()
                    self.since, self.error = time.time(), ""
                    status.update(revived=", ".join(dead) or restart, since=self.since)
                status["processes"] = {n: p.pid for n, p in self.backend.procs.items()}
                status["restarts"] = self.backend.restarts
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        return {**status, "ok": self.backend is not None and not self.error, "error": self.error}

    def stop(self) -> dict[str, Any]:
        """Stop the back end's process groups (SIGINT, then SIGKILL) and clean shared memory."""
        try:
            if self.backend is not None:
                self.backend.stop()
            if self.claim is not None:
                self.claim.release()
            self._record(running=False)
            clean_shared_memory()
        except Exception as exc:
            return {"backend": self.backend_id, "stopped": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"backend": self.backend_id, "stopped": True, "error": ""}


# -- the front end: connect, place the actors, watch them ----------------------------------------------------


def connect(address: str, backends: int, force: bool = False) -> bool:
    """ray.init for an ADDRESS or `auto` (a running cluster, else a new one on 127.0.0.1); False if already.

    An ADDRESS is probed first (a TCP connect of PROBE_TIMEOUT_S: Ray itself retries for minutes). Unless
    `force`, more back ends than the cluster's CPUs / CPUS_PER_BACKEND are refused (ValueError)."""
    if ray.is_initialized():
        return False
    opts: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False, "logging_level": logging.WARNING}
    if address != "auto":
        probe(address)
        host = address.rsplit(":", 1)[0].strip("[]")
        if _is_loopback(host) and host not in ("127.0.0.1", "::1", "localhost"):
            opts["_node_ip_address"] = host  # attach to the node there (Ray rewrites 127.0.0.1 itself)
        ray.init(address=address, **opts)
    else:
        try:
            ray.init(address="auto", **opts)
        except ConnectionError:
            _single_host()
            # A new cluster on this machine: as many back ends as `myriad collect` runs locally (2 per core).
            cores, wanted = os.cpu_count() or 1, math.ceil(backends * CPUS_PER_BACKEND)
            cpus = max(cores, wanted) if force or wanted <= 2 * cores else cores
            ray.init(_node_ip_address="127.0.0.1", num_cpus=cpus, **opts)
    capacity = int(ray.cluster_resources().get("CPU", 0) // CPUS_PER_BACKEND)
    if backends > capacity and not force:
        ray.shutdown()
        raise ValueError(
            f"--backends {backends}: the Ray cluster hosts at most {capacity} ({CPUS_PER_BACKEND:g} CPU each, "
            f"$MYRIAD_RAY_CPUS); --force to queue them anyway"
        )
    return True


def probe(address: str) -> None:
    """ConnectionError unless a Ray head's GCS answers at ADDRESS (host:port) within PROBE_TIMEOUT_S.

    A gRPC server (the GCS) answers the HTTP/2 connection preface with a SETTINGS frame; anything else there
    would keep ray.init retrying for minutes, deaf to Ctrl-C. (With RAY_USE_TLS only the TCP connect is
    checked.)"""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConnectionError(
            f"expected auto or HOST:PORT (the head's GCS port, 6379 by default), got {address!r}"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S) as s:
            if os.environ.get("RAY_USE_TLS", "0") not in ("", "0"):
                return
            s.sendall(_HTTP2_PREFACE)
            reply = s.recv(9)
    except OSError as exc:
        raise ConnectionError(
            f"no Ray head answers at {address} ({exc.strerror or exc}); start one with "
            f"`ray start --head` or use --ray auto"
        ) from None
    if len(reply) < 9 or reply[3] != 0x04:  # frame header: length (3), type (SETTINGS = 4), ...
        raise ConnectionError(f"{address} is open but is not a Ray head (no gRPC answer); check the port")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _single_host() -> None:
    # Ray replaces 127.0.0.1 by the host's network address unless it runs "without clusters"; a new local
    # cluster should listen on loopback only. (A Ray constant, read when Ray resolves the node address.)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


@dataclass
class _Slot:
    backend: str
    actor: Any
    ping: Any = None
    sent: float = 0.0
    incarnation: str = ""
    since: float = 0.0
    restarts: int = 0
    failing_since: float | None = None
    restart_request: str = ""
    last_error: str = ""
    died: int = 0  # pings in a row that found the actor dead (ActorDiedError)
    dead: bool = False  # Ray will not restart it: no more pings


class BackendFleet:
    """The actors of one campaign, as seen from the front end: pings, heartbeats, restarts, shutdown."""

    def __init__(
        self, store: Store, campaign: str, backends: int, description: Path, values: dict[str, str], uri: str
    ):
        self.store, self.campaign, self._hb_checked = store, campaign, 0.0
        cls = ray.remote(BackendActor)
        self.slots = [
            _Slot(f"b{i}", cls.options(name=actor_name(campaign, f"b{i}"), namespace=NAMESPACE,
                                       num_cpus=CPUS_PER_BACKEND, max_restarts=MAX_RESTARTS,
                                       max_task_retries=MAX_TASK_RETRIES).remote(i, str(description), values, uri))
            for i in range(backends)
        ]  # fmt: skip

    def restarts(self) -> dict[str, int]:
        return {s.backend: s.restarts for s in self.slots}

    def total_restarts(self) -> int:
        return sum(s.restarts for s in self.slots)

    def check(self, bar: tqdm) -> None:
        """Collect answered pings, send new ones, act on failures and stale heartbeats."""
        now = time.monotonic()
        pending = [s.ping for s in self.slots if s.ping is not None]
        ready = set(ray.wait(pending, num_returns=len(pending), timeout=0)[0]) if pending else set()
        for s in self.slots:
            if s.dead:
                continue
            if s.ping is None:
                s.ping, s.sent, s.restart_request = s.actor.health.remote(s.restart_request), now, ""
            elif s.ping in ready:
                self._on_status(s, _result(s.ping), bar)
                s.ping = None
            elif now - s.sent > PING_TIMEOUT_S:
                self._on_status(s, {"ok": False, "unreachable": True, "error": "no answer to ping"}, bar)
        if all(s.dead for s in self.slots):
            raise RuntimeError(
                f"every back end's actor is dead and no longer restarted: {self.slots[0].last_error}"
            )
        lost = [s for s in self.slots if s.failing_since is not None and now - s.failing_since > LOST_AFTER_S]
        if len(lost) + sum(s.dead for s in self.slots) == len(self.slots):
            raise RuntimeError(f"every back end unreachable for {LOST_AFTER_S:.0f} s: {lost[0].last_error}")
        if now - self._hb_checked > 5.0:
            self._hb_checked = now
            self._check_heartbeats()

    def _on_status(self, s: _Slot, st: dict[str, Any], bar: tqdm) -> None:
        s.died = s.died + 1 if st.get("dead") else 0
        if s.died >= 2:  # the second in a row was sent after the first had failed: no new incarnation came
            s.dead, s.failing_since, s.last_error = True, None, st["error"]
            self._report(
                s, f"actor dead for good ({st['error']}; max_restarts {MAX_RESTARTS})", bar, count=False
            )
            return
        if st.get("unreachable"):
            if s.failing_since is None:
                s.failing_since, s.last_error = time.monotonic(), st["error"]
                self._report(
                    s, f"actor unreachable ({st['error']}); Ray restarts it if it can", bar, count=False
                )
            return
        s.failing_since = None
        if s.incarnation and st["incarnation"] != s.incarnation:
            self._report(s, f"actor restarted by Ray on {st['host']} ({st['node_ip']})", bar)
        elif st["revived"]:
            self._report(s, f"{st['revived']}; restarted", bar)
        s.incarnation, s.since = st["incarnation"], st["since"]
        if st["error"] and st["error"] != s.last_error:
            bar.write(f"back end {s.backend}: {st['error']}")
        s.last_error = st["error"]

    def _report(self, s: _Slot, what: str, bar: tqdm, count: bool = True) -> None:
        s.restarts += count
        note = f"back end {s.backend}: {what}" + (f" (restart {s.restarts})" if count else "")
        try:
            released = release_leases(self.store, self.campaign, s.backend)
            self.store.heartbeat(s.backend, campaign=self.campaign, restarts=s.restarts, last_error=what)
            note += f", {released} lease(s) released"
        except StorageUnavailable:
            note += "; its leases expire by themselves (database unreachable)"
        bar.write(note)

    def _check_heartbeats(self) -> None:
        try:
            beats = {b["backend"]: b["updated_at"] for b in self.store.backends(self.campaign)}
        except StorageUnavailable:
            return  # the back ends cannot write either: not their fault
        now = datetime.now(UTC)
        for s in self.slots:
            if s.dead or s.failing_since is not None or not s.incarnation:
                continue
            last = max(
                datetime.fromtimestamp(s.since, UTC), beats.get(s.backend, datetime.min.replace(tzinfo=UTC))
            )
            if (now - last).total_seconds() > HEARTBEAT_STALE_S:
                s.restart_request = f"no heartbeat for {HEARTBEAT_STALE_S:.0f} s"

    def stop(self) -> None:
        """Settle what the last pings left open, ask every actor to stop its back end, then end the actors
        (their leftovers die with them)."""
        for s in self.slots:
            try:
                if s.died and not s.dead:
                    self._confirm(s)
            except Exception:  # Ray itself going away: the stop goes on
                pass
        refs = []
        for s in self.slots:
            try:
                refs.append(s.actor.stop.remote())
            except Exception:
                pass
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=STOP_TIMEOUT_S)
        for s in self.slots:
            try:
                ray.kill(s.actor, no_restart=True)
            except Exception:
                pass

    def _confirm(self, s: _Slot) -> None:
        """One more ping to a back end whose actor the last ping found dead, answered before the run ends: the
        run's log then says whether Ray gave up on it (a campaign can finish before the next regular ping)."""
        ping = s.actor.health.remote("")
        ray.wait([ping], timeout=CONFIRM_TIMEOUT_S)
        self._on_status(s, _result(ping), tqdm)  # tqdm.write: the progress bar is closed by now


def _result(ref: Any) -> dict[str, Any]:
    """A ping's status; on failure `unreachable` (the actor is restarting or dead), and `dead` if Ray says so.

    A ping to a restarting actor is retried on its next incarnation (max_task_retries); ActorDiedError means Ray
    gave up on it (its restarts used up, or it died on every retry): `dead`, once seen twice in a row."""
    try:
        return ray.get(ref, timeout=0)
    except Exception as exc:  # ActorDiedError, ActorUnavailableError, ...
        error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        dead = isinstance(exc, ray.exceptions.ActorDiedError)
        return {"ok": False, "unreachable": True, "dead": dead, "error": error}


def run_ray(
    store: Store,
    spec: CampaignSpec,
    uri: str,
    database: str,
    backends: int,
    description: Path,
    ray_address: str,
    progress: bool = True,
    poll: float = 0.5,
    force: bool = False,
) -> CollectResult:
    """Run `backends` back ends as Ray actors on the campaign until it is complete (or Ctrl-C)."""
    description = Path(description).resolve()  # the actors' working directory is Ray's, not ours
    values = {"ws": str(workspace()), "database": database, "campaign": spec.name}
    check_worlds(load_description(description, check_packages=False), values)  # here, not in every actor
    try:
        started = connect(ray_address, backends, force)
    except ConnectionError as exc:  # the CLI reports ValueErrors as `myriad: ...`
        raise ValueError(f"--ray {ray_address}: {exc}") from None
    lock = lock_run(run_directory(workspace() / "log" / "runs", spec.name, uri, database), spec.name)
    start = time.monotonic()
    result = CollectResult(spec.name, spec.attempts, 0, 0, 0.0, None)
    fleet: BackendFleet | None = None
    try:
        store.create_campaign(spec.name, spec.items, template=spec.params, seed=spec.seed)
        fleet = BackendFleet(store, spec.name, backends, description, values, uri)
        watch(store, spec, result, start, backends, fleet.check, fleet.total_restarts, progress, poll)
    except KeyboardInterrupt:
        result.interrupted = True
    except RuntimeError as exc:
        print(f"myriad: {exc}", file=sys.stderr)
        result.failed = True
    finally:
        if fleet is not None:
            fleet.stop()
        if started:
            ray.shutdown()
        lock.release()
    return finish(store, result, start, fleet.restarts() if fleet else {})
