"""myriad_runtime.node.BackendNode: publishers without rclpy's default QoS-event handlers (fewer entities for the
executor to walk on every wake-up), still delivering; explicit event callbacks are kept."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
from rclpy.event_handler import EventHandler, PublisherEventCallbacks  # noqa: E402
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


def test_backend_node_publisher_delivers(ros_client):
    client = ros_client("/node_test")
    talker = BackendNode("talker", namespace="/node_test", context=client.context)
    pub = talker.create_publisher(String, "chatter", 10)
    try:
        msg = client.wait_message(String, "chatter", trigger=lambda: pub.publish(String(data="hello")))
        assert msg.data == "hello"
    finally:
        talker.destroy_node()
