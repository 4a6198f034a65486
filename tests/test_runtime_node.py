"""myriad_runtime.node.BackendNode: publishers without rclpy's default QoS-event handlers (fewer entities for the
executor to walk on every wake-up), still delivering; explicit event callbacks are kept."""

from __future__ import annotations

import threading

import pytest

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
from rclpy.event_handler import EventHandler, PublisherEventCallbacks  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from myriad_runtime.node import BackendNode  # noqa: E402


def event_handlers(node: Node) -> int:
    return sum(isinstance(w, EventHandler) for w in node.waitables)


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def test_backend_node_publishers_have_no_default_event_handlers(context):
    plain = Node("plain", namespace="/node_test", context=context)
    lean = BackendNode("lean", namespace="/node_test", context=context)
    before = event_handlers(plain), event_handlers(lean)
    for node in (plain, lean):
        node.create_publisher(String, "a", 10)
        node.create_publisher(String, "b", 10)
    assert event_handlers(plain) - before[0] == 4  # rclpy's default: two per publisher
    assert event_handlers(lean) == 0  # none, not even for its /parameter_events publisher
    lean.create_publisher(String, "c", 10, event_callbacks=PublisherEventCallbacks(incompatible_qos=print))
    assert event_handlers(lean) == 2  # given callbacks: rclpy's own handling (its default for the other kind)
    plain.destroy_node()
    lean.destroy_node()


def test_backend_node_publisher_delivers(context):
    pub_node = BackendNode("talker", namespace="/node_test", context=context)
    sub_node = Node("listener", namespace="/node_test", context=context)
    got, done = [], threading.Event()
    sub_node.create_subscription(String, "chatter", lambda m: (got.append(m.data), done.set()), 10)
    pub = pub_node.create_publisher(String, "chatter", 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sub_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        for _ in range(300):  # until the subscription has matched and a message came through
            pub.publish(String(data="hello"))
            if done.wait(0.1):
                break
        assert got and got[0] == "hello"
    finally:
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        pub_node.destroy_node()
        sub_node.destroy_node()
