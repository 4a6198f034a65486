"""Shared pytest fixtures of the Myriad workspace. Append new fixtures in their own clearly marked section."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

WS = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------------
# CI (CI=true) installs everything the tests need: a skip there is a broken install, reported as a failure,
# except for what cannot be installed here.
# ---------------------------------------------------------------------------------------------------------

CI_ALLOWED_SKIPS = ("launch_ros", "lerobot")  # not installable from PyPI here / an optional extra


def _fail_skip_in_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    if os.environ.get("CI") == "true" and report.skipped:
        reason = str(report.longrepr)
        if not any(allowed in reason for allowed in CI_ALLOWED_SKIPS):
            report.outcome = "failed"
            report.longrepr = f"skipped under CI=true, where everything is installed: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


# ---------------------------------------------------------------------------------------------------------
# myriad_storage fixtures: a real SecantusDB server (in-process or as a subprocess); no mocks.
# ---------------------------------------------------------------------------------------------------------

try:  # importable from install/ after colcon build; from the source tree before it
    import myriad_storage  # noqa: F401
except ImportError:
    sys.path.insert(0, str(WS / "src" / "myriad_storage"))


def collect_command(uri: str, *args: str) -> list[str]:
    """`myriad collect` on database 't' of `uri`, as a user runs it."""
    return [
        sys.executable,
        "-m",
        "myriad_frontend.cli",
        "collect",
        "--mongo-uri",
        uri,
        "--database",
        "t",
        *args,
    ]


@pytest.fixture
def start_collect():
    """Starts `myriad collect` in its own session, its output to a log (readable while it runs), in the
    environment of a user's shell (no PYTHONUNBUFFERED). A run still going at the end is interrupted: its
    front end stops its back ends."""
    procs: list[subprocess.Popen] = []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

    def start(uri: str, log: Path, *args: str) -> subprocess.Popen:
        with open(log, "w") as out:
            procs.append(
                subprocess.Popen(
                    collect_command(uri, *args),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                    start_new_session=True,
                )
            )
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)  # its back ends die with it (PR_SET_PDEATHSIG)
                p.wait()


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60.0,
    what: str = "condition",
    interval: float = 0.1,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll `predicate` until it returns something other than None or False, and return that; AssertionError
    naming `what` after `timeout` s. Exceptions of the `tolerate` types count as "not yet" (a database that is
    down on purpose)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value is not None and value is not False:
                return value
        except tolerate:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mongo_uri():
    """URI of an in-process, in-memory SecantusDB server shared by the whole session."""
    from secantus import SecantusDBServer

    server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=":memory:")
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def storage_store(mongo_uri):
    """A Store on a fresh database (dropped afterwards) of the session server."""
    from myriad_storage.store import Store

    name = f"test_{uuid.uuid4().hex[:12]}"
    store = Store(mongo_uri, database=name, server_timeout_ms=3000)
    store.ensure_indexes()
    try:
        yield store
    finally:
        store.client.drop_database(name)
        store.close()


@pytest.fixture(scope="module")
def module_db(tmp_path_factory):
    """URI of a SecantusDB server (secantusd-py subprocess) shared by a test module; stopped afterwards."""
    from myriad_storage.server import LocalServer

    server = LocalServer(tmp_path_factory.mktemp("db"), port=free_port())
    uri = server.ensure_running()
    yield uri
    server.stop()


@pytest.fixture
def storage_local_server(tmp_path):
    """A LocalServer (secantusd-py subprocess) in tmp_path on a free port, started; stopped afterwards."""
    from myriad_storage.server import LocalServer

    server = LocalServer(tmp_path / "dbserver", port=free_port())
    server.ensure_running()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def storage_attempt_factory():
    """make(campaign, index, success=True, size=64) -> (record, images) of a synthetic attempt with real PNGs."""
    import numpy as np

    from myriad_storage.codec import depth_to_png, encode_png, seg_to_png

    def make(campaign: str, index: int, success: bool = True, size: int = 64) -> tuple[dict, dict]:
        rng = np.random.default_rng(index)
        item_id = f"{campaign}/{index:06d}"
        record = {
            "attempt_key": f"{item_id}/0",
            "campaign": campaign,
            "item_id": item_id,
            "item_index": index,
            "attempt_index": 0,
            "backend": "b0",
            "seed": index,
            "params": {"seed": index},
            "grasp": {"x": 0.1, "y": 0.2, "z": 0.3, "yaw": 0.0},
            "success": success,
        }
        images = {
            "pre_rgb": encode_png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
            "pre_depth": depth_to_png(rng.uniform(0.2, 2.0, (size, size)).astype(np.float32)),
            "pre_segmentation": seg_to_png(rng.integers(-1, 6, (size, size), dtype=np.int32)),
        }
        return record, images

    return make


# ---------------------------------------------------------------------------------------------------------
# ROS fixtures: node processes started like the front end starts them, and a client node in the test process.
# ---------------------------------------------------------------------------------------------------------

import threading  # noqa: E402

from myriad_frontend.plan import dds_profiles_env  # noqa: E402
from myriad_runtime.isolation import claim_domain  # noqa: E402

# One DDS domain per test session, held for the whole session (as a run holds its own), so neither a developer's
# running back ends nor another test session answer a test; `myriad collect` started by a test runs in it.
SESSION_DOMAIN = claim_domain(os.environ.get("ROS_DOMAIN_ID"), run="pytest", workspace=str(WS))
os.environ["ROS_DOMAIN_ID"] = str(SESSION_DOMAIN.domain_id)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.update(dds_profiles_env(WS))  # services of the test process wait for a new client as back ends do
os.environ.setdefault("MYRIAD_WS", str(WS))

# A suite started as a background job of a non-interactive shell (`cmd &`, as some CI runners and nohup loops do)
# inherits SIGINT ignored, and every process it starts would too: the tests that send SIGINT to `myriad collect`
# (a terminal's Ctrl-C) then see it ignored and the campaign run to its end. Processes started by the tests get
# SIGINT as a terminal gives it (a handled signal is reset to its default in a child at exec).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def dds_participants(pid: int | None = None, domain: int | None = None) -> list[int]:
    """The participant numbers of process `pid`'s (default: this one) DDS participants in `domain` (default: the
    session's), as the OS sees them: each binds its discovery port 7410 + 250 domain + 2 number (RTPS mapping)."""
    import psutil

    base = 7410 + 250 * (SESSION_DOMAIN.domain_id if domain is None else domain)
    ports = {c.laddr.port for c in psutil.Process(pid).net_connections(kind="udp")}
    return sorted((p - base) // 2 for p in ports if base <= p < base + 240 and (p - base) % 2 == 0)


def discovery_report(pids: list[int], logs: list[Path]) -> str:
    """What to look at when processes `pids` are not discovered: their DDS participants and the end of each
    log."""
    lines = [
        *(f"pid {pid}: participants {dds_participants(pid)}" for pid in pids),
        *(f"--- {log.parent.name}/{log.name}:\n{log.read_text()[-1500:]}" for log in logs if log.exists()),
    ]
    return "\n".join(lines)


class NodeProcs:
    """Node processes started as the front end starts them: `myriad_runtime.container` in its own process group,
    ROS environment of the front end, parameters from a file. Calling it starts one; stop() ends them all."""

    def __init__(self, directory: Path):
        self.directory, self.procs, self.logs = directory, [], []

    def __call__(
        self,
        classes: list[str],
        namespace: str,
        params: dict | None = None,
        log: str | None = None,
        env: dict[str, str] | None = None,
        threads: int | None = None,
    ):
        """start(classes, namespace, params={node: {...}}, log=file name, env=extra environment (secrets such
        as MYRIAD_MONGO_URI), threads=executor threads) -> Popen."""
        import yaml

        from myriad_frontend.processes import ros_env, start_group

        pfile = self.directory / f"params_{len(self.procs)}.yaml"
        pfile.write_text(
            yaml.safe_dump({f"{namespace}/{n}": {"ros__parameters": p} for n, p in (params or {}).items()})
            if params
            else "{}\n"
        )
        cmd = [sys.executable, "-m", "myriad_runtime.container", "--nodes", *classes]
        cmd += ["--threads", str(threads)] if threads else []
        cmd += ["--ros-args", "-r", f"__ns:={namespace}", "-r", f"/clock:={namespace}/clock"]
        cmd += ["--params-file", str(pfile)] if params else []
        log_file = self.directory / (log or f"proc_{len(self.procs)}.log")
        proc = start_group(cmd, log_file, ros_env(env))
        self.procs.append(proc)
        self.logs.append(log_file)
        return proc

    def stop(self) -> None:
        """Stop every process, then print the end of each log (pytest shows it when the test failed)."""
        from myriad_frontend.processes import clean_shared_memory, stop_groups

        stop_groups(self.procs)
        clean_shared_memory()
        for log_file in self.logs:
            print(f"--- {log_file.name}:\n{log_file.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def node_procs(tmp_path):
    """start(classes, namespace, params={node: {...}}, log=None) -> Popen; every process group is stopped
    afterwards (SIGINT, then SIGKILL)."""
    procs = NodeProcs(tmp_path)
    yield procs
    procs.stop()


@pytest.fixture(scope="module")
def module_node_procs(tmp_path_factory):
    """node_procs for a whole test module (processes shared by its tests)."""
    procs = NodeProcs(tmp_path_factory.mktemp("nodes"))
    yield procs
    procs.stop()


# A new subscriber misses what a publisher sends before it has matched the subscriber (Fast DDS discovery runs
# beside the first messages), and this side cannot see the publisher's match: wait this long after discovering the
# publisher. (Services wait for a new client's match themselves: config/fastdds.xml.)
MATCH_GRACE_S = 0.5


_CONTEXTS: dict[int, object] = {}


def session_context(domain_id: int | None = None):
    """The test process's one rclpy context (one DDS participant) in `domain_id` (default: the session's), kept
    for the whole session: test clients come and go as nodes in it. Runs that made a participant per client and
    destroyed it at close (its number reused again and again in one process, as no user's process does) lost
    service answers in tests that pass alone: a full run, and a 12-file run the round before."""
    import rclpy

    domain = SESSION_DOMAIN.domain_id if domain_id is None else domain_id
    if domain not in _CONTEXTS:
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain)
        _CONTEXTS[domain] = context
    return _CONTEXTS[domain]


class RosClient:
    """A node in the test process (in its session context), spun in a background thread; blocking calls with
    timeouts."""

    def __init__(self, namespace: str, domain_id: int | None = None):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.context = session_context(domain_id)
        self.node = rclpy.create_node("test_client", namespace=namespace, context=self.context)
        self.executor = MultiThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        """Spin until closed. rclpy's executor dies of InvalidHandle when the test thread destroys an entity while
        the executor waits on it (wait_message's subscription; ros2/rclpy#1142), and every later call of this
        client then goes unanswered (seen in CI): wait again instead, without the destroyed entity."""
        from rclpy.exceptions import InvalidHandle

        while True:
            try:
                return self.executor.spin()
            except InvalidHandle:
                continue

    def call(self, srv_type, name: str, request, timeout: float = 60.0):
        from myriad_runtime.calls import call_service

        return call_service(self.node.create_client(srv_type, name), request, timeout)

    def action(self, action_type, name: str, goal, timeout: float = 60.0):
        from myriad_runtime.calls import action_client, call_action

        return call_action(action_client(self.node, action_type, name), goal, timeout)

    def send_goal(self, action_type, name: str, goal, feedback=None, timeout: float = 60.0):
        """Send an action goal; returns its accepted goal handle (get_result_async, cancel_goal_async)."""
        from myriad_runtime.calls import action_client

        client = action_client(self.node, action_type, name)
        assert client.wait_for_server(timeout_sec=timeout), f"action {name} not available"
        if feedback is not None:
            # Feedback is volatile (seen in CI: a plan_and_execute goal's "planning" feedback missing): wait for the
            # server's feedback publisher, then MATCH_GRACE_S for the server to see this subscriber.
            topic = f"{name}/_action/feedback"
            deadline = time.monotonic() + timeout
            while self.node.count_publishers(topic) == 0:
                assert time.monotonic() < deadline, f"no feedback publisher on {topic}"
                time.sleep(0.05)
            time.sleep(MATCH_GRACE_S)
        handle = self._wait(client.send_goal_async(goal, feedback_callback=feedback), timeout)
        assert handle.accepted, f"goal of {name} rejected"
        return handle

    def subscribe(self, msg_type, topic: str, depth: int = 100) -> list:
        """A list that receives every message on `topic` from now on."""
        received: list = []
        self.node.create_subscription(msg_type, topic, received.append, depth)
        return received

    def wait_message(
        self, msg_type, topic: str, predicate=lambda _m: True, timeout: float = 60.0, trigger=None
    ):
        """The first message on `topic` for which predicate(msg) holds. `trigger()`, if given, is called once
        subscribed and again every 2 s while none came (a publisher may not have matched the first time)."""
        got, done = [], threading.Event()

        def on_message(msg):
            if not done.is_set() and predicate(msg):
                got.append(msg)
                done.set()

        sub = self.node.create_subscription(msg_type, topic, on_message, 10)
        try:
            deadline = time.monotonic() + timeout
            while not done.is_set() and time.monotonic() < deadline:
                if trigger is not None:
                    trigger()
                done.wait(min(2.0, max(0.0, deadline - time.monotonic())))
            assert done.is_set(), f"no matching message on {topic} in {timeout} s"
        finally:
            self.node.destroy_subscription(sub)
        return got[0]

    @staticmethod
    def wait(future, timeout: float = 60.0):
        """The result of an rclpy future, waited for up to `timeout` s."""
        return RosClient._wait(future, timeout)

    @staticmethod
    def _wait(future, timeout):
        from myriad_runtime.calls import wait_future

        assert wait_future(future, timeout), "no answer in time"
        return future.result()

    def close(self):
        from myriad_runtime.calls import destroy_node

        self.executor.shutdown()
        destroy_node(self.node)


@pytest.fixture
def ros_client():
    """make(namespace) -> RosClient; closed afterwards."""
    clients = []

    def make(namespace: str, domain_id: int | None = None) -> RosClient:
        clients.append(RosClient(namespace, domain_id))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


# ---------------------------------------------------------------------------------------------------------
# dashboard fixtures: a seeded database and a dashboard served from it on a free loopback port.
# ---------------------------------------------------------------------------------------------------------

for _pkg in ("myriad_frontend", "myriad_sim"):  # the source tree when the package is not built yet
    try:
        __import__(_pkg)
    except ImportError:
        sys.path.insert(0, str(WS / "src" / _pkg))


# The timings every dashboard_attempt carries (seconds per phase, as a back end's attempt records them).
DASHBOARD_TIMINGS = {"reset": 0.25, "capture_pre": 0.12, "reach": 0.3, "descend": 0.1, "close": 0.1, "lift": 0.15,
                     "capture_post": 0.12, "total": 1.14, "encode": 0.04}  # fmt: skip


@pytest.fixture(scope="session")
def dashboard_attempt(storage_attempt_factory):
    """make(campaign, index, backend="b0", success=True) -> (record, images): a full attempt record with objects,
    outcome, grasp over the tray and four real PNGs (pre RGB/depth/segmentation, post RGB)."""

    def make(campaign: str, index: int, backend: str = "b0", success: bool = True) -> tuple[dict, dict]:
        record, images = storage_attempt_factory(campaign, index, success=success)
        obj = index % 4
        record.update(
            backend=backend,
            extra={"outcome": "lifted" if success else "slipped", "target": f"obj{obj}", "moves": 3},
            grasp={"x": 0.6, "y": 0.02 * (obj - 2), "z": 0.04, "yaw": 0.3 * obj},
            objects=[
                {
                    "name": f"obj{obj}",
                    "source": f"pybullet_data:random_urdfs/{obj:03d}/{obj:03d}.urdf",
                    "position": [0.6, 0.0, 0.02],
                    "orientation": [0.0, 0.0, 0.0, 1.0],
                }
            ],
            lifted_object=f"obj{obj}" if success else "",
            lift_height=0.1 if success else 0.0,
            camera={"width": 64, "height": 64, "k": [55.0, 0, 32.0, 0, 55.0, 32.0, 0, 0, 1.0]},
            timings=dict(DASHBOARD_TIMINGS),
        )
        images["post_rgb"] = images["pre_rgb"]  # same bytes, stored as a distinct GridFS file
        return record, images

    return make


@pytest.fixture(scope="session")
def dashboard_model():
    """save(store, campaigns, seed) -> version: a grasp model stored by ModelRegistry.save itself (no PyTorch),
    its record as `myriad train` writes it (validation metrics from classifier_metrics); the file's bytes are
    not a loadable model."""
    import numpy as np

    from myriad_learning.metrics import classifier_metrics
    from myriad_learning.registry import ModelRegistry

    def save(store, campaigns: list[str], seed: int) -> str:
        rng = np.random.default_rng(seed)
        labels = rng.random(50) < 0.4
        probs = np.clip(0.3 * labels + 0.7 * rng.random(50), 0.0, 1.0)
        info = {
            "campaigns": campaigns, "attempts": 250, "successes": 100, "skipped": 0, "train": 200,
            "validation": 50, "seconds": 3.5, "losses": [0.69, 0.61],
            "metrics": {"validation": classifier_metrics(labels, probs), "train": classifier_metrics(labels, probs)},
            "config": {"epochs": 2, "batch": 64, "lr": 1e-3, "weight_decay": 1e-4, "width": 8, "validation": 0.2,
                       "seed": seed},
        }  # fmt: skip
        return ModelRegistry(store).save(f"weights of seed {seed}".encode(), info)

    return save


@pytest.fixture
def dashboard_serve(mongo_uri):
    """start(database, token=None) -> a started DashboardServer on a free loopback port; stopped afterwards."""
    from myriad_frontend.dashboard import serve

    servers = []

    def start(database: str, token: str | None = None):
        server = serve(mongo_uri, database, host="127.0.0.1", port=0, token=token, poll_interval_s=0.25)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def world_capture():
    """One real capture of the tray world (seed 3, three objects), rendered once per session: a dict with the
    PNGs `images` (pre_rgb, pre_depth, pre_segmentation), the `frame` arrays, `objects` {name: (body, xyz)},
    the `camera` and the `world` file."""
    from myriad_sim.camera import Camera
    from myriad_sim.spec import load_world
    from myriad_sim.world import World
    from myriad_storage.codec import depth_to_png, encode_png, seg_to_png

    path = WS / "worlds" / "tray.yaml"
    world = World(load_world(path), renderer="tiny")
    try:
        states = world.reset(3, 3)
        frame = world.capture()
    finally:
        world.close()
    return {
        "images": {
            "pre_rgb": encode_png(frame.rgb),
            "pre_depth": depth_to_png(frame.depth),
            "pre_segmentation": seg_to_png(frame.segmentation),
        },
        "frame": frame,
        "objects": {s.name: (s.body, s.position) for s in states},
        "camera": Camera(load_world(path).camera),
        "world": path,
    }
