"""The logger node in its own process (real rclpy, real DB): claim, store, heartbeat, status, clean SIGINT exit."""

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
pytest.importorskip("myriad_interfaces.msg", reason="source scripts/env.sh (built interfaces)")
from conftest import WS  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from myriad_interfaces.msg import BackendStatus, GraspAttempt  # noqa: E402
from myriad_interfaces.srv import ClaimWork, StoreAttempt  # noqa: E402
from myriad_storage.store import Store  # noqa: E402

RUN_NODE = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from myriad_storage.logger_node import main; main()"
)


@pytest.fixture
def logger_process(mongo_uri, tmp_path):
    """Start the logger node (namespace /t<hex>) in a new session; yield (namespace, db, env); kill its group."""
    ns = f"/t{uuid.uuid4().hex[:8]}"
    db = f"test_{ns[1:]}"
    Store(mongo_uri, db).create_campaign("ln", [{"seed": 10 + i} for i in range(2)])
    env = dict(
        os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(random.randint(40, 99))
    )
    env["PYTHONPATH"] = f"{WS / 'src' / 'myriad_storage'}:{env.get('PYTHONPATH', '')}"
    env["MYRIAD_MONGO_URI"] = mongo_uri  # a secret: environment only, never a parameter
    params = {
        "database": db,
        "campaign": "ln",
        "heartbeat_period": 0.3,
        "spool_dir": str(tmp_path / "spool"),
    }
    cmd = [sys.executable, "-c", RUN_NODE, "--ros-args", "-r", f"__ns:={ns}"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    with open(tmp_path / "logger.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    old_domain = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    try:
        yield proc, ns, db, tmp_path / "logger.log"
    finally:
        if old_domain is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = old_domain
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
        Store(mongo_uri, db).client.drop_database(db)


def call(executor, client, request, timeout=10.0):
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=timeout)
    assert future.done(), f"no answer from {client.srv_name}"
    return future.result()


def attempt_msg(item):
    h, w = 16, 20
    rgb = np.full((h, w, 3), 200, np.uint8)
    m = GraspAttempt(
        attempt_key=f"{item.item_id}/0",
        campaign=item.campaign,
        item_id=item.item_id,
        item_index=item.item_index,
        seed=item.seed,
        params_json=item.params_json,
        success=True,
    )
    m.pre_rgb = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=rgb.tobytes())
    depth = np.full((h, w), 0.8, np.float32)
    m.pre_depth = Image(height=h, width=w, encoding="32FC1", step=w * 4, data=depth.tobytes())
    return m


def test_logger_node_claims_stores_and_reports(logger_process, mongo_uri):
    proc, ns, db, log_path = logger_process
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("storage_test_client", context=ctx)
    statuses = []
    node.create_subscription(BackendStatus, f"{ns}/status", statuses.append, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        claim = node.create_client(ClaimWork, f"{ns}/claim_work")
        store = node.create_client(StoreAttempt, f"{ns}/store_attempt")
        assert claim.wait_for_service(timeout_sec=20), log_path.read_text()
        assert store.wait_for_service(timeout_sec=10)

        first = call(ex, claim, ClaimWork.Request())
        second = call(ex, claim, ClaimWork.Request())
        assert first.available and (first.item_id, first.seed) == ("ln/000000", 10)
        assert json.loads(first.params_json) == {"seed": 10} and second.item_id == "ln/000001"
        none_left = call(ex, claim, ClaimWork.Request())
        assert not none_left.available and not none_left.done and "2 leased" in none_left.message

        for item in (first, second):
            res = call(ex, store, StoreAttempt.Request(attempt=attempt_msg(item)))
            assert res.accepted and not res.buffered, res.message
        with Store(mongo_uri, db) as s:
            deadline = time.monotonic() + 10
            while s.progress("ln")["done"] < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert s.progress("ln")["attempts"] == 2
            doc = s.attempt("ln/000000/0")
            assert doc["backend"] == ns[1:] and set(doc["images"]) == {"pre_rgb", "pre_depth"}
        assert call(ex, claim, ClaimWork.Request()).done

        deadline = time.monotonic() + 5
        while not any(m.attempts == 2 for m in statuses) and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        assert any(m.backend == ns[1:] and m.attempts == 2 and m.successes == 2 for m in statuses)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)

    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(15) == 0, log_path.read_text()
    with Store(mongo_uri, db) as s:
        (hb,) = s.backends("ln")
    assert hb["backend"] == ns[1:] and hb["state"] == "stopping" and hb["attempts"] == 2
    assert hb["pending_writes"] == 0 and hb["last_error"] == ""
