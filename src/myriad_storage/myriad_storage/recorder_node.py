"""The ``recorder`` node: writes topics of its namespace to a rosbag2-compatible MCAP file (see ``bag.py``).

Subscribes (serialized, ``raw=True``) to each configured topic once a publisher of it appears in the graph,
with the publishers' QoS (reliable / transient local only if every publisher offers it, as rosbag2 does).
Log time is the middleware's reception time (wall clock, as ``ros2 bag record``), or the node's clock with
``use_sim_time:=true`` (the back end's sim clock, which runs on across resets). The throttles count in the
message's own header stamp when it has one (sim time for the sim's topics: what is kept does not depend on
load), else in log time. The file ``<output_dir>/<backend_id>_<UTC yyyymmdd-HHMMSS>.mcap`` is closed (summary
and indexes written) by ``close()``/``destroy_node()``, on SIGINT/SIGTERM through the container, and when
``max_bytes`` is reached; chunks are written out at least every ``FLUSH_PERIOD_S``, so a killed recorder loses
at most that much (``bag.recover`` makes the rest a complete file).
"""

from __future__ import annotations

import importlib
import socket
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rclpy.logging
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription

from myriad_runtime.node import BackendNode

from .bag import COMPRESSIONS, BagWriter, DefinitionError, message_stamp, qos_dict, stamp_offset

if TYPE_CHECKING:
    from rclpy.duration import Duration

DEFAULT_TOPICS = [
    "joint_states",
    "/tf",
    "/tf_static",
    "camera/rgb/image",
    "camera/depth/image",
    "camera/camera_info",
    "markers",
    "status",
]
CAMERA_TYPES = {
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/PointCloud2",
}
DISCOVERY_PERIOD_S = 1.0
FLUSH_PERIOD_S = 5.0
QUEUE_DEPTH = 100


def message_class(type_name: str) -> type:
    """``pkg/msg/Name`` -> the rclpy message class (ImportError/AttributeError when not installed)."""
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def offered_qos(profile: QoSProfile) -> dict[str, Any]:
    """An rclpy QoS profile of a publisher as ``bag.qos_dict`` spells it."""

    def duration(d: Duration) -> tuple[int, int]:
        return divmod(d.nanoseconds, 1_000_000_000)

    p = qos_dict(
        profile.reliability.name.lower(),
        profile.durability.name.lower(),
        profile.depth,
        profile.history.name.lower(),
    )
    p.update(
        deadline=duration(profile.deadline),
        lifespan=duration(profile.lifespan),
        liveliness=profile.liveliness.name.lower(),
        liveliness_lease_duration=duration(profile.liveliness_lease_duration),
    )
    return p


class RecorderNode(BackendNode):
    """Recorder of one back end's topics; ``kwargs`` go to ``Node`` (namespace, context, parameter_overrides...)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", **kwargs)
        self._read_parameters()
        self._lock = threading.Lock()
        self._bag = self._open_bag()
        self._wanted = {self.resolve_topic_name(t) for t in self._topics}
        self._subs: dict[str, Subscription] = {}
        self._period_ns: dict[str, int] = {}
        self._next_ns: dict[str, int] = {}
        self._stamp_offset: dict[str, int | None] = {}
        self._sim_time = bool(self.get_parameter("use_sim_time").value)
        self._warned: set[str] = set()
        self._full = False
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(DISCOVERY_PERIOD_S, self._discover, clock=steady)
        self.create_timer(FLUSH_PERIOD_S, self._flush, clock=steady)
        self.get_logger().info(
            f"recording {sorted(self._wanted)} to {self._bag.path} (max {self._max_bytes} bytes, "
            f"{self._rate} Hz, camera {self._camera_rate} Hz; 0 = every message)"
        )
        self._discover()

    def _read_parameters(self) -> None:
        def declare(name: str, default: Any, description: str) -> Any:
            return self.declare_parameter(
                name, default, ParameterDescriptor(description=description, read_only=True)
            ).value

        ns = self.get_namespace().strip("/").replace("/", "_")
        out = declare("output_dir", "", "directory of the MCAP file (required; created if missing)")
        self._backend = declare("backend_id", ns or socket.gethostname(), "first part of the file name")
        self._topics = list(declare("topics", DEFAULT_TOPICS, "topics to record, relative to the namespace"))
        self._rate = declare(
            "max_rate_hz", 0.0, "rate limit per topic, in header stamps (else log time); 0 = unlimited"
        )
        self._camera_rate = declare(
            "camera_max_rate_hz",
            2.0,
            "rate limit of camera topics (Image, CompressedImage, CameraInfo, PointCloud2); 0 = unlimited",
        )
        self._max_bytes = declare(
            "max_bytes", 500_000_000, "stop and close the file at this much message data"
        )
        self._compression = declare("compression", "zstd", f"chunk compression: {', '.join(COMPRESSIONS)}")
        if not out:
            raise ValueError("parameter 'output_dir' is required: the directory of the recorded MCAP file")
        if not self._topics or not all(isinstance(t, str) and t for t in self._topics):
            raise ValueError(
                f"parameter 'topics': expected a non-empty list of topic names, got {self._topics}"
            )
        for name, value in (("max_rate_hz", self._rate), ("camera_max_rate_hz", self._camera_rate)):
            if not value >= 0:
                raise ValueError(f"parameter {name!r}: expected a rate >= 0 Hz (0 = unlimited), got {value}")
        if not self._max_bytes > 0:
            raise ValueError(
                f"parameter 'max_bytes': expected a positive number of bytes, got {self._max_bytes}"
            )
        if self._compression not in COMPRESSIONS:
            raise ValueError(f"parameter 'compression': expected one of {list(COMPRESSIONS)}")
        if not self._backend or "/" in self._backend:
            raise ValueError(
                f"parameter 'backend_id': expected a non-empty name without '/', got {self._backend!r}"
            )
        self._output_dir = Path(out)

    def _open_bag(self) -> BagWriter:
        stem = f"{self._backend}_{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        for n in range(100):
            try:
                return BagWriter(self._output_dir / f"{stem}{f'-{n}' if n else ''}.mcap", self._compression)
            except FileExistsError:
                continue
        raise ValueError(f"parameter 'output_dir': no free file name {stem}-N.mcap in {self._output_dir}")

    # -- discovery ------------------------------------------------------------------------------------

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    def _discover(self) -> None:
        """Subscribe to each wanted topic that has publishers now (after the file closed: unsubscribe all)."""
        if self._full:
            for sub in self._subs.values():
                self.destroy_subscription(sub)
            self._subs.clear()
            return
        types = dict(self.get_topic_names_and_types())
        for topic in sorted(self._wanted - set(self._subs)):
            infos = self.get_publishers_info_by_topic(topic)
            if not infos or topic not in types:
                continue
            if len(types[topic]) != 1:
                self._warn_once(topic, f"not recording {topic}: several types {types[topic]}")
                continue
            type_name = types[topic][0]
            try:
                cls = message_class(type_name)
                with self._lock:
                    if self._bag.closed:
                        return
                    self._bag.add_topic(
                        topic,
                        type_name,
                        [offered_qos(i.qos_profile) for i in infos],
                        str(infos[0].topic_type_hash),
                    )
            except (ImportError, AttributeError, ValueError, DefinitionError) as exc:
                self._warn_once(topic, f"not recording {topic} ({type_name}): {exc}")
                continue
            qos = QoSProfile(depth=QUEUE_DEPTH)
            if any(i.qos_profile.reliability != ReliabilityPolicy.RELIABLE for i in infos):
                qos.reliability = ReliabilityPolicy.BEST_EFFORT
            if all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos):
                qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
            rate = self._camera_rate if type_name in CAMERA_TYPES else self._rate
            self._stamp_offset[topic] = stamp_offset(self._bag.definitions[type_name])
            self._period_ns[topic] = int(1e9 / rate) if rate > 0 else 0
            self._subs[topic] = self.create_subscription(
                cls, topic, partial(self._on_message, topic), qos, raw=True
            )
            self.get_logger().info(f"recording {topic} ({type_name})")

    # -- writing --------------------------------------------------------------------------------------

    def _on_message(self, topic: str, data: bytes, info: dict) -> None:
        # Log time as rosbag2 takes it: reception by the middleware (exact however late this callback runs),
        # or the node's clock on sim time; publish time: the publisher's send time.
        received = info.get("received_timestamp", 0)
        log_time = self.get_clock().now().nanoseconds if self._sim_time or not received else received
        period = self._period_ns[topic]
        if (
            period
        ):  # throttled on the message's own (header) time if it has one: load does not change what is kept
            offset = self._stamp_offset[topic]
            stamp = message_stamp(data, offset) if offset is not None else None
            if not self._keep(topic, log_time if stamp is None else stamp, period):
                return
        with self._lock:
            if self._bag.closed:
                return
            if self._bag.payload_bytes + len(data) > self._max_bytes:
                self._full = True
                self._close_bag(f"max_bytes {self._max_bytes} reached, recording stopped")
                return
            self._bag.write(topic, data, log_time, info.get("source_timestamp") or log_time)

    def _keep(self, topic: str, t: int, period: int) -> bool:
        """At most one message per `period` on a grid from the first kept; time going back restarts it."""
        due = self._next_ns.get(topic)
        if due is not None and 0 < due - t <= period:
            return False
        on_time = due is not None and 0 <= t - due < period
        self._next_ns[topic] = due + period if on_time else t + period
        return True

    def _flush(self) -> None:
        with self._lock:
            if not self._bag.closed:
                self._bag.flush()

    def _close_bag(self, why: str) -> None:
        """Close the file (caller holds the lock) and say what it holds."""
        self._bag.close()
        counts = {t: i.messages for t, i in self._bag.topics.items()}
        text = f"{why}: {self._bag.path} holds {self._bag.payload_bytes} bytes of messages {counts}"
        # After SIGINT the context is shut down: log without the node's /rosout publisher.
        logger = (
            self.get_logger()
            if self.context.ok()
            else rclpy.logging.get_logger(f"{self.get_logger().name}.close")
        )
        (logger.warning if self._full else logger.info)(text)

    def _drain(self) -> None:
        """Write what the middleware delivered but no callback took yet (a stop right after a publish)."""
        for topic, sub in list(self._subs.items()):
            while True:
                with sub.handle:
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                if taken is None:
                    break
                self._on_message(topic, *taken)

    def close(self) -> None:
        """Write what was delivered, the file's summary, and close it; idempotent (the container calls it on
        shutdown, while the context is valid)."""
        if self.context.ok() and not self._bag.closed:
            self._drain()
        with self._lock:
            if not self._bag.closed:
                self._close_bag("closed")

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    from myriad_runtime.container import run_nodes

    run_nodes([RecorderNode], args)


if __name__ == "__main__":
    main()
