"""The rosbag2-style MCAP writer, read back with independent readers (rosbags, mcap_ros2); no ROS graph."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader
from rosbags.typesys import get_types_from_msg
from sensor_msgs.msg import CameraInfo, Image, JointState

from myriad_storage.bag import (
    SEPARATOR,
    BagWriter,
    DefinitionError,
    full_definition,
    message_stamp,
    nested_types,
    qos_dict,
    stamp_offset,
)


def test_full_definition_has_every_nested_type_once():
    text = full_definition("sensor_msgs/msg/CameraInfo")
    headers = [line for line in text.splitlines() if line.startswith("MSG: ")]
    assert headers == [
        "MSG: std_msgs/msg/Header",
        "MSG: builtin_interfaces/msg/Time",
        "MSG: sensor_msgs/msg/RegionOfInterest",
    ]
    assert text.count(SEPARATOR) == 3 and text.splitlines()[0].startswith("#")
    types = get_types_from_msg(text, "sensor_msgs/msg/CameraInfo")  # an independent .msg parser accepts it
    assert set(types) == {"sensor_msgs/msg/CameraInfo", "std_msgs/msg/Header", "builtin_interfaces/msg/Time",
                          "sensor_msgs/msg/RegionOfInterest"}  # fmt: skip


def test_nested_types_parses_fields_not_constants_or_comments():
    text = "# geometry_msgs/Point p\nint32 A=1\nstring<=5 s\nPoint[<=3] pts\npkg/Thing[] t # c\nHeader h\nuint8[4] b\n"
    assert nested_types(text, "geo") == ["geo/msg/Point", "pkg/msg/Thing", "std_msgs/msg/Header"]


def test_unknown_type_is_a_clear_error():
    with pytest.raises(DefinitionError, match="no nope_msgs/msg/Thing.msg under AMENT_PREFIX_PATH"):
        full_definition("nope_msgs/msg/Thing")
    with pytest.raises(DefinitionError, match="expected 'package/msg/Name'"):
        full_definition("Image")


def test_stamp_offset_finds_the_header_stamp_of_stamped_types(tmp_path):
    assert stamp_offset(full_definition("sensor_msgs/msg/Image")) == 0
    assert stamp_offset(full_definition("rosgraph_msgs/msg/Clock")) is None
    tf_like = (
        f"geometry_msgs/TransformStamped[] transforms\n{SEPARATOR}\nMSG: geometry_msgs/msg/TransformStamped\n"
    )
    assert stamp_offset(tf_like + full_definition("geometry_msgs/msg/TransformStamped")) == 4
    js = JointState(name=["a"], position=[1.0])
    js.header.stamp.sec, js.header.stamp.nanosec = 12, 345
    bag = BagWriter(tmp_path / "s.mcap")
    bag.write_message("/js", js, 0)
    bag.close()
    with AnyReader([bag.path]) as reader:
        (raw,) = [raw for _c, _t, raw in reader.messages()]
    assert message_stamp(raw, 0) == 12_000_000_345
    assert message_stamp(b"\x00\x01\x00\x00" + bytes(4), 4) is None  # an empty sequence has no stamp


def write_sample(path: Path, count: int = 5, chunk_size: int = 1 << 20, camera: bool = True) -> BagWriter:
    bag = BagWriter(path, chunk_size=chunk_size)
    for i in range(count):
        js = JointState(name=["a", "b"], position=[float(i), 2.0])
        js.header.stamp.sec = i
        bag.write_message("/b0/joint_states", js, i * 10**9)
    if not camera:
        return bag
    img = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
    img.header.frame_id = "camera_optical"
    bag.write_message("/b0/camera/rgb/image", img, 10**9)
    bag.write_message("/b0/camera/camera_info", CameraInfo(width=3, height=2, k=np.arange(9.0)), 10**9)
    return bag


def test_written_file_reads_back_with_rosbags_and_mcap_ros2(tmp_path):
    bag = write_sample(tmp_path / "a.mcap")
    bag.close()
    bag.close()  # idempotent
    with open(bag.path, "rb") as f:
        reader = make_reader(f)
        header = reader.get_header()
        summary = reader.get_summary()
    assert header.profile == "ros2" and "myriad_storage" in header.library
    assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
    assert all(
        "offered_qos_profiles" in c.metadata and c.message_encoding == "cdr"
        for c in summary.channels.values()
    )
    assert summary.chunk_indexes[0].compression == "zstd"
    with AnyReader([bag.path]) as reader:
        counts = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        assert counts == {
            "/b0/joint_states": ("sensor_msgs/msg/JointState", 5),
            "/b0/camera/rgb/image": ("sensor_msgs/msg/Image", 1),
            "/b0/camera/camera_info": ("sensor_msgs/msg/CameraInfo", 1),
        }
        msgs = {c.topic: reader.deserialize(raw, c.msgtype) for c, _t, raw in reader.messages()}
    assert (
        list(msgs["/b0/joint_states"].position) == [4.0, 2.0]
        and msgs["/b0/joint_states"].header.stamp.sec == 4
    )
    image = msgs["/b0/camera/rgb/image"]
    assert (image.width, image.height, image.encoding, image.header.frame_id) == (
        3,
        2,
        "rgb8",
        "camera_optical",
    )
    assert bytes(image.data) == bytes(range(18))
    assert list(msgs["/b0/camera/camera_info"].k) == list(range(9))
    with open(bag.path, "rb") as f:  # mcap_ros2's decoder builds its own classes from the stored definitions
        decoded = list(
            make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages(["/b0/joint_states"])
        )
    assert [m.message.log_time for m in decoded] == [i * 10**9 for i in range(5)]
    assert list(decoded[-1].decoded_message.position) == [4.0, 2.0]


def test_qos_metadata_is_rosbag2s_yaml(tmp_path):
    bag = BagWriter(tmp_path / "q.mcap")
    bag.add_topic(
        "/tf_static", "std_msgs/msg/String", [qos_dict("reliable", "transient_local", 1)], "RIHS01_ab"
    )
    bag.write("/tf_static", b"\x00\x01\x00\x00\x01\x00\x00\x00\x00", 1)
    bag.close()
    with AnyReader([bag.path]) as reader:
        (conn,) = reader.connections
        qos = conn.ext.offered_qos_profiles[0]
    assert (qos.reliability.name, qos.durability.name, qos.depth) == ("RELIABLE", "TRANSIENT_LOCAL", 1)
    with open(bag.path, "rb") as f:
        (channel,) = make_reader(f).get_summary().channels.values()
    assert channel.metadata["topic_type_hash"] == "RIHS01_ab"


def test_existing_file_is_never_overwritten(tmp_path):
    (tmp_path / "x.mcap").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        BagWriter(tmp_path / "x.mcap")
    assert (tmp_path / "x.mcap").read_bytes() == b"keep"


def test_killed_writer_leaves_its_complete_chunks_recoverable(tmp_path):
    bag = write_sample(tmp_path / "live.mcap", count=200, chunk_size=2000, camera=False)
    shutil.copy(bag.path, tmp_path / "killed.mcap")  # the file as a SIGKILL would leave it: no summary
    written = bag.topics["/b0/joint_states"].messages
    bag.close()
    with pytest.raises(Exception, match="magic"):
        with AnyReader([tmp_path / "killed.mcap"]) as reader:
            pass
    cli = [sys.executable, "-m", "myriad_storage.bag", "recover", str(tmp_path / "killed.mcap")]
    done = subprocess.run(
        [*cli, str(tmp_path / "recovered.mcap")], capture_output=True, text=True, check=True
    )
    copied = int(done.stdout.split()[0])
    again = subprocess.run([*cli, str(tmp_path / "recovered.mcap")], capture_output=True, text=True)
    assert again.returncode == 2 and "exists, not overwritten" in again.stderr
    with AnyReader([tmp_path / "recovered.mcap"]) as reader:
        (conn,) = [c for c in reader.connections if c.topic == "/b0/joint_states"]
        positions = [
            reader.deserialize(raw, conn.msgtype).position[0] for _c, _t, raw in reader.messages([conn])
        ]
    # Everything but the chunk in progress (< 2000 bytes, about 25 joint states) survives, in order.
    assert written == 200 and copied == len(positions) and 200 - 30 <= copied < 200
    assert positions == [float(i) for i in range(copied)]
