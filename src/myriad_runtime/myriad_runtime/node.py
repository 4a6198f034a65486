"""The base class of Myriad's nodes: rclpy's Node with fewer entities for its executor to walk on each wake-up."""

from __future__ import annotations

from typing import Any

from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.publisher import Publisher


class BackendNode(Node):
    """rclpy's Node whose publishers come without rclpy's default QoS-event handlers.

    rclpy gives every publisher (its own `/parameter_events` one too) two event handlers that only log a warning
    (incompatible QoS, incompatible type), and a MultiThreadedExecutor rebuilds its wait set, in Python, from
    every entity of every node it spins, on every wake-up: in a back end's container they were 35 of ~95 entities
    per rebuild. The subscriber side (RViz, `ros2 topic echo`) still reports an incompatible QoS. A publisher
    given its own `event_callbacks` keeps them.
    """

    def create_publisher(self, *args: Any, **kwargs: Any) -> Publisher:
        kwargs.setdefault("event_callbacks", PublisherEventCallbacks(use_default_callbacks=False))
        return super().create_publisher(*args, **kwargs)
