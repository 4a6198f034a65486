"""The tests' own ROS client (conftest.RosClient) stays usable after it destroys what its executor waits on."""

from __future__ import annotations

import uuid

import pytest

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
from std_msgs.msg import String  # noqa: E402


def test_the_client_keeps_spinning_after_wait_message_destroyed_its_subscriptions(ros_client):
    """wait_message destroys its subscription from the test thread while the client's executor may be waiting on
    it; rclpy's executor then dies of InvalidHandle (ros2/rclpy#1142: 1 in ~35 such cycles here), and in CI a
    planner test's later calls all went unanswered. 150 cycles must leave the client answering."""
    client = ros_client(f"/t{uuid.uuid4().hex[:8]}")
    pub = client.node.create_publisher(String, "chatter", 10)
    for k in range(150):
        tag = f"m{k}"
        msg = client.wait_message(
            String, "chatter", lambda m, tag=tag: m.data == tag, timeout=10.0,
            trigger=lambda tag=tag: pub.publish(String(data=tag)),
        )  # fmt: skip
        assert msg.data == tag
    assert client.thread.is_alive(), "the client's executor thread died"
