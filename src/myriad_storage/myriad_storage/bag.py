"""rosbag2-compatible MCAP writing without ROS: message definitions from the installed .msg files, and a writer.

The file layout follows rosbag2's MCAP storage plugin: profile ``ros2``, one ``ros2msg`` schema per type whose
data is the type's .msg text followed by every nested type's text (each after a line of 80 ``=`` and a line
``MSG: pkg/msg/Name``), ``cdr`` channels with ``offered_qos_profiles`` (YAML) and ``topic_type_hash`` metadata,
zstd-compressed chunks with message indexes and a summary section. ``ros2 bag play FILE.mcap``, Foxglove, RViz
(through ``ros2 bag play``), ``rosbags`` and ``mcap_ros2.reader`` read it.

A file whose writer was killed has no summary; every chunk completed before the kill (see ``flush``) is
readable by readers that scan the data section (``rosbags``, ``mcap recover``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcap
import numpy as np
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import CompressionType, Writer
from mcap_ros2._dynamic import serialize_dynamic

SEPARATOR = "=" * 80
PRIMITIVES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
}  # fmt: skip
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
LIBRARY = f"myriad_storage.bag mcap/{mcap.__version__}"


class DefinitionError(ValueError):
    """A message type whose .msg file (or a nested type's) is not installed."""


def split_type(type_name: str) -> tuple[str, str]:
    """``pkg/msg/Name`` or ``pkg/Name`` -> (pkg, Name); anything else raises DefinitionError."""
    parts = type_name.split("/")
    if len(parts) == 3 and parts[1] == "msg" and all(parts):
        return parts[0], parts[2]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise DefinitionError(f"message type {type_name!r}: expected 'package/msg/Name'")


def share_dirs() -> list[Path]:
    """``share`` directories of AMENT_PREFIX_PATH, in order (our install/ first, then the venv's wheels)."""
    return [Path(p) / "share" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


def msg_text(type_name: str, search: list[Path] | None = None) -> str:
    """The text of the installed ``share/<pkg>/msg/<Name>.msg`` of `type_name`."""
    pkg, name = split_type(type_name)
    for share in share_dirs() if search is None else search:
        path = share / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text()
    raise DefinitionError(f"message type {type_name!r}: no {pkg}/msg/{name}.msg under AMENT_PREFIX_PATH")


def nested_types(text: str, package: str) -> list[str]:
    """Message types of the fields of a .msg text (``pkg/msg/Name``, in order, without duplicates)."""
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "=" in fields[1] or "=" in fields[0].split("<=")[0]:
            continue  # blank, comment or constant
        base = re.sub(r"\[.*\]$", "", fields[0]).split("<=")[0]
        if base in PRIMITIVES:
            continue
        if base == "Header":
            ref = "std_msgs/msg/Header"
        elif "/" in base:
            ref = "{}/msg/{}".format(*split_type(base))
        else:
            ref = f"{package}/msg/{base}"
        if ref not in found:
            found.append(ref)
    return found


def full_definition(type_name: str, search: list[Path] | None = None) -> str:
    """rosbag2's complete ``ros2msg`` definition: the type's text, then each nested type's (depth first)."""
    pkg, name = split_type(type_name)
    root = msg_text(type_name, search)
    parts, seen = [root.rstrip("\n")], {f"{pkg}/msg/{name}"}
    stack = list(reversed(nested_types(root, pkg)))
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        text = msg_text(dep, search)
        parts.append(f"{SEPARATOR}\nMSG: {dep}\n{text.rstrip(chr(10))}")
        stack.extend(reversed(nested_types(text, split_type(dep)[0])))
    return "\n".join(parts) + "\n"


def _first_field_type(text: str) -> str:
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and "=" not in fields[1] and "=" not in fields[0].split("<=")[0]:
            return fields[0]
    return ""


def stamp_offset(definition: str) -> int | None:
    """Where a message's own time is in its CDR payload (after the 4-byte encapsulation): 0 when the type starts
    with a ``std_msgs/Header``, 4 when it starts with a sequence of such types (tf2_msgs/TFMessage,
    visualization_msgs/MarkerArray: the first element's), None otherwise (see ``message_stamp``)."""
    sections = definition.split(SEPARATOR + "\n")
    first = _first_field_type(sections[0])
    if first in ("Header", "std_msgs/Header", "std_msgs/msg/Header"):
        return 0
    element = re.fullmatch(r"(.+)\[(<=\d+)?\]", first)
    if not element:
        return None
    name = element.group(1)
    for section in sections[1:]:
        head, _, text = section.partition("\n")
        if head.startswith("MSG: ") and head[5:].split("/")[-1] == name.split("/")[-1]:
            return 4 if stamp_offset(text) == 0 else None
    return None


def message_stamp(data: bytes, offset: int) -> int | None:
    """The header stamp (ns) at `offset` (from ``stamp_offset``) of a CDR message; None for an empty sequence."""
    order = "little" if data[1] == 1 else "big"
    if offset == 4 and int.from_bytes(data[4:8], order) == 0:
        return None
    at = 4 + offset
    sec = int.from_bytes(data[at : at + 4], order, signed=True)
    return sec * 1_000_000_000 + int.from_bytes(data[at + 4 : at + 8], order)


def qos_yaml(profiles: list[dict[str, Any]]) -> str:
    """rosbag2's ``offered_qos_profiles`` YAML for a list of plain-dict QoS profiles (see ``qos_dict``)."""
    lines = []
    for p in profiles:
        lines.append(f"- history: {p['history']}")
        for key in ("depth", "reliability", "durability"):
            lines.append(f"  {key}: {p[key]}")
        for key in ("deadline", "lifespan"):
            lines += [f"  {key}:", f"    sec: {p[key][0]}", f"    nsec: {p[key][1]}"]
        lines.append(f"  liveliness: {p['liveliness']}")
        d = p["liveliness_lease_duration"]
        lines += ["  liveliness_lease_duration:", f"    sec: {d[0]}", f"    nsec: {d[1]}"]
        lines.append("  avoid_ros_namespace_conventions: false")
    return "\n".join(lines) + ("\n" if lines else "")


def qos_dict(
    reliability: str = "reliable", durability: str = "volatile", depth: int = 10, history: str = "keep_last"
) -> dict[str, Any]:
    """A QoS profile as ``qos_yaml`` takes it; durations are (sec, nsec), infinite as rmw spells it."""
    infinite = (9223372036, 854775807)
    return {
        "history": history,
        "depth": depth,
        "reliability": reliability,
        "durability": durability,
        "deadline": infinite,
        "lifespan": infinite,
        "liveliness": "automatic",
        "liveliness_lease_duration": infinite,
    }


def plain(value: Any) -> Any:
    """An rclpy message as nested dicts and lists (numpy arrays as lists), as mcap_ros2's encoder takes it."""
    if hasattr(value, "get_fields_and_field_types"):
        return {f: plain(getattr(value, f)) for f in value.get_fields_and_field_types()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass
class TopicInfo:
    channel_id: int
    type_name: str
    messages: int = 0
    bytes: int = 0


class BagWriter:
    """Writes serialized (CDR) ROS 2 messages to one rosbag2-style MCAP file. Not thread-safe: callers lock.

    ``payload_bytes`` counts message payloads written (before compression): with compression the file is
    smaller than that plus its indexes (about 100 bytes per message and per chunk).
    """

    def __init__(self, path: str | Path, compression: str = "zstd", chunk_size: int = 1 << 20) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r}: expected one of {sorted(COMPRESSIONS)}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "xb")  # noqa: SIM115 -- closed by close()
        self._mcap = Writer(self._file, chunk_size=chunk_size, compression=COMPRESSIONS[compression])
        self._mcap.start(profile=Profile.ROS2, library=LIBRARY)
        self._schemas: dict[str, int] = {}
        self.definitions: dict[str, str] = {}
        self._encoders: dict[str, Any] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.payload_bytes = 0
        self.closed = False

    def add_topic(
        self,
        topic: str,
        type_name: str,
        qos_profiles: list[dict[str, Any]] | None = None,
        type_hash: str = "",
        definition: str | None = None,
    ) -> None:
        """Register a channel (idempotent); the definition is read from the installed .msg files by default."""
        if topic in self.topics:
            return
        if type_name not in self._schemas:
            text = definition if definition is not None else full_definition(type_name)
            self.definitions[type_name] = text
            self._schemas[type_name] = self._mcap.register_schema(
                type_name, SchemaEncoding.ROS2, text.encode()
            )
        metadata = {"offered_qos_profiles": qos_yaml(qos_profiles or [])}
        if type_hash:
            metadata["topic_type_hash"] = type_hash
        channel = self._mcap.register_channel(topic, MessageEncoding.CDR, self._schemas[type_name], metadata)
        self.topics[topic] = TopicInfo(channel, type_name)

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """Append one serialized message of a registered topic."""
        info = self.topics[topic]
        stamp = log_time_ns if publish_time_ns is None else publish_time_ns
        self._mcap.add_message(info.channel_id, log_time_ns, data, stamp, sequence=info.messages)
        info.messages += 1
        info.bytes += len(data)
        self.payload_bytes += len(data)
        self._file.flush()  # a completed chunk reaches the file at once (survives a kill)

    def write_message(self, topic: str, msg: Any, log_time_ns: int) -> None:
        """Serialize an rclpy message (with the schema's CDR encoder) and write it; registers the topic."""
        cls = type(msg)
        type_name = f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"
        self.add_topic(topic, type_name)
        if type_name not in self._encoders:  # rclpy's serialize_message appends bytes that rosbags refuses
            self._encoders[type_name] = serialize_dynamic(type_name, full_definition(type_name))[type_name]
        self.write(topic, self._encoders[type_name](plain(msg)), log_time_ns)

    def flush(self) -> None:
        """Close the current chunk and write it out, so a kill after this loses nothing written so far."""
        self._mcap.flush()

    def close(self) -> None:
        """Write the summary (indexes, statistics) and close the file; idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self._mcap.finish()
        finally:
            self._file.close()


def recover(src: str | Path, dst: str | Path) -> int:
    """Copy every message of the complete chunks of `src` (e.g. a killed recording without a summary) to a new,
    complete file `dst`; returns the number of messages copied. Like ``mcap recover``."""
    schemas: dict[int, int] = {}
    channels: dict[int, int] = {}
    count = 0
    with open(src, "rb") as f, open(dst, "xb") as out:
        writer = Writer(out, compression=CompressionType.ZSTD)
        writer.start(profile=Profile.ROS2, library=LIBRARY)
        try:
            for rec in StreamReader(f).records:
                if isinstance(rec, Schema) and rec.id not in schemas:
                    schemas[rec.id] = writer.register_schema(rec.name, rec.encoding, rec.data)
                elif isinstance(rec, Channel) and rec.id not in channels:
                    channels[rec.id] = writer.register_channel(
                        rec.topic, rec.message_encoding, schemas[rec.schema_id], rec.metadata
                    )
                elif isinstance(rec, Message):
                    writer.add_message(
                        channels[rec.channel_id], rec.log_time, rec.data, rec.publish_time, rec.sequence
                    )
                    count += 1
        except (McapError, EOFError):
            pass  # the truncated end: the chunk being written when the writer died
        writer.finish()
    return count


def main(argv: list[str] | None = None) -> None:
    """``python -m myriad_storage.bag recover KILLED.mcap OUT.mcap``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m myriad_storage.bag", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recover", help="copy the complete chunks of a killed recording to a complete file")
    rec.add_argument("src", type=Path)
    rec.add_argument("dst", type=Path)
    args = parser.parse_args(argv)
    if not args.src.is_file():
        parser.error(f"{args.src}: no such file")
    if args.dst.exists():
        parser.error(f"{args.dst}: exists, not overwritten")
    print(f"{recover(args.src, args.dst)} messages recovered to {args.dst}")


if __name__ == "__main__":
    main()
