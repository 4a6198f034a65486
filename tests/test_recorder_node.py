"""The recorder node with a real sim server, stopped by SIGINT, its MCAP file read back with rosbags."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from conftest import wait_for
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from myriad_frontend.processes import stop_groups
from myriad_interfaces.srv import CaptureImages, StepSimulation

SIM = "myriad_sim.sim_server_node:SimServerNode"
RECORDER = "myriad_storage.recorder_node:RecorderNode"
STEPS_PER_JOINT_STATE = 5  # 240 Hz physics, joint_state_rate 48 Hz
HEARTBEAT_S = 3.0  # Fast DDS's default period of a reliable writer's heartbeat


def wait_recorded(client, topics: list[str], recorders: int = 1) -> None:
    """Until the recorder(s) subscribed to every topic (they do once the topic's publisher is discovered)."""
    for t in topics:
        wait_for(lambda t=t: client.node.count_subscribers(t) >= recorders, what=f"recorder on {t}")


def joint_state_steps(recorded: list) -> set[int]:
    """The physics steps (240 Hz) the recorded (log time, JointState) pairs were stamped at, repeats merged."""
    return {round((m.header.stamp.sec + m.header.stamp.nanosec * 1e-9) * 240) for _t, m in recorded}


def one_file(d: Path) -> Path:
    files = sorted(d.glob("*.mcap"))
    assert len(files) == 1, files
    return files[0]


def read_all(path: Path) -> dict[str, list]:
    """topic -> [(log_time_ns, message)] with rosbags' own deserializer, from the definitions in the file."""
    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
        types = {c.topic: c.msgtype for c in reader.connections}
    return out, types


def test_composed_recorder_writes_what_the_sim_published(node_procs, ros_client, tmp_path):
    ns = f"/rec_{os.getpid()}"
    out = tmp_path / "bags"
    proc = node_procs(
        [SIM, RECORDER],
        ns,
        {
            "sim_server": {"renderer": "tiny", "joint_state_rate": 48.0},
            "recorder": {"output_dir": str(out), "use_sim_time": True, "camera_max_rate_hz": 0.0},
        },
        log="backend.log",
    )
    client = ros_client(ns)
    topics = ["joint_states", "camera/rgb/image", "camera/depth/image", "camera/camera_info"]
    wait_recorded(client, [f"{ns}/{t}" for t in topics])
    steps, calls, captures = 24, 10, 3
    first = client.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=0)).sim_time
    start = round((first.sec + first.nanosec * 1e-9) * 240)
    for _ in range(calls):
        assert client.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=steps)).success
    for _ in range(captures):
        assert client.call(CaptureImages, "capture_images", CaptureImages.Request()).success
    stop_groups([proc])  # SIGINT, the production shutdown path
    log = (tmp_path / "backend.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    path = one_file(out)
    assert path.name.startswith(f"{ns.strip('/')}_") and "closed: " in log

    msgs, types = read_all(path)
    expected = {
        f"{ns}/joint_states": "sensor_msgs/msg/JointState",
        f"{ns}/camera/rgb/image": "sensor_msgs/msg/Image",
        f"{ns}/camera/depth/image": "sensor_msgs/msg/Image",
        f"{ns}/camera/camera_info": "sensor_msgs/msg/CameraInfo",
    }
    assert {t: types.get(t) for t in expected} == expected
    assert set(types) - set(expected) <= {"/tf", "/tf_static", f"{ns}/markers"}  # the sim's visualization
    # Every joint state the stepping published is there (the paused sim republishes the current one at 10 Hz).
    stamps = joint_state_steps(msgs[f"{ns}/joint_states"])
    end = start + steps * calls
    stepped = {k for k in range(start + 1, end + 1) if k % STEPS_PER_JOINT_STATE == 0}
    assert stepped <= stamps and max(stamps) <= end, (sorted(stepped - stamps), max(stamps), end)
    # Log times are the node's clock, here sim time (from the sim's /clock), not wall time.
    assert all(0 <= t <= end / 240 * 1e9 + 1 for t, _m in msgs[f"{ns}/joint_states"])
    rgb = [m for _t, m in msgs[f"{ns}/camera/rgb/image"]]
    depth = [m for _t, m in msgs[f"{ns}/camera/depth/image"]]
    assert len(rgb) == len(depth) == len(msgs[f"{ns}/camera/camera_info"]) == captures
    assert (
        (rgb[0].width, rgb[0].height, rgb[0].encoding, rgb[0].header.frame_id)
        == (
            472,
            472,
            "rgb8",
            f"{ns.strip('/').split('/')[-1]}/camera_optical",  # prefixed with the back end (its namespace's last part)
        )
    )
    assert np.frombuffer(bytes(rgb[0].data), np.uint8).std() > 0  # a real rendering, not a blank buffer
    d = np.frombuffer(bytes(depth[-1].data), np.float32)
    assert depth[-1].encoding == "32FC1" and d.size == 472 * 472 and 0.1 < float(np.median(d)) < 2.0

    with open(path, "rb") as f:  # a second, independent decoder: mcap_ros2's, from the stored definitions
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        info = next(reader.iter_decoded_messages([f"{ns}/camera/camera_info"])).decoded_message
    assert (info.width, info.height, info.k[2], info.k[5]) == (472, 472, 236.0, 236.0)


def test_throttle_in_sim_time_and_size_bound_in_separate_processes(node_procs, ros_client, tmp_path):
    ns = f"/rec2_{os.getpid()}"
    sim = node_procs([SIM], ns, {"sim_server": {"renderer": "tiny", "camera_rate": 5.0}}, log="sim.log")
    throttled, small = tmp_path / "throttled", tmp_path / "small"
    topics = ["camera/rgb/image", "joint_states"]
    rec = node_procs(
        [RECORDER],
        ns,
        {
            "recorder": {
                "output_dir": str(throttled),
                "topics": topics,
                "camera_max_rate_hz": 1.0,
            }
        },
        log="recorder.log",
    )
    # A second recorder elsewhere, on absolute topic names, stops at 2.5 MB (rgb images are 668 kB each).
    max_bytes = 2_500_000
    rec_small = node_procs(
        [RECORDER],
        f"{ns}_small",
        {
            "recorder": {
                "output_dir": str(small),
                "topics": [f"{ns}/camera/rgb/image", f"{ns}/camera/depth/image"],
                "camera_max_rate_hz": 0.0,
                "max_bytes": max_bytes,
            }
        },
        log="small.log",
    )
    client = ros_client(ns)
    wait_recorded(client, [f"{ns}/camera/rgb/image"], recorders=2)
    wait_recorded(client, [f"{ns}/joint_states"])
    seconds, wall_start = 6, time.time_ns()
    for _ in range(seconds):  # each second of sim renders 5 images
        assert client.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=240)).success
    wait_for(lambda: "max_bytes 2500000 reached" in (tmp_path / "small.log").read_text(), what="size bound")
    # A joint state lost in transport (a loaded host) is repaired at the writer's next heartbeat, every 3 s
    # (Fast DDS's default): a recorder stopped before then misses the last ones.
    time.sleep(HEARTBEAT_S + 0.5)
    stop_groups([rec, rec_small, sim], grace=15.0)
    for p, name in ((rec, "recorder"), (rec_small, "small"), (sim, "sim")):
        assert p.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]

    msgs, _types = read_all(one_file(throttled))
    images = msgs[f"{ns}/camera/rgb/image"]
    # 30 images in 6 s of sim; the throttle counts in their header stamps (sim time), so load does not change
    # what is kept: one per second on a grid (a gap of more than 1 s only if the middleware lost an image).
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _t, m in images]  # ns
    assert seconds - 2 <= len(images) <= seconds, stamps
    # The 1 s grid from the first kept image, in integer ns with 1 ms of slack for rounding (images are 0.2 s
    # apart): in floats, 2.8 - 0.8 floors to 1.
    cells = [(t - stamps[0] + 10**6) // 10**9 for t in stamps]
    assert cells == sorted(set(cells)), (
        stamps
    )  # at most one per cell (a lost image lets the next one in early)
    log_times = [t for t, _m in images]  # reception times (wall clock, as rosbag2), in order
    assert wall_start <= log_times[0] and log_times == sorted(log_times) and log_times[-1] <= time.time_ns()
    # Unthrottled and nothing lost, whatever order repairs arrived in: one every STEPS_PER_JOINT_STATE steps from
    # the first the recorder got to the end. The first may be after 0 s: the sim's publisher matches the recorder
    # some time after the test sees its subscription, possibly once the run has begun.
    steps = sorted(joint_state_steps(msgs[f"{ns}/joint_states"]))
    assert steps[0] <= 240 and steps == list(range(steps[0], seconds * 240 + 1, STEPS_PER_JOINT_STATE)), (
        steps[:3]
    )

    path = one_file(small)  # closed at the limit: complete and readable, below the bound
    with AnyReader([path]) as reader:
        sizes = [len(raw) for _c, _t, raw in reader.messages()]
    assert (
        1 <= len(sizes) <= 4 and sum(sizes) <= max_bytes < sum(sizes) + 891_200
    )  # stopped at the next image
    assert path.stat().st_size <= max_bytes


def test_killed_recorder_leaves_its_flushed_chunks(node_procs, ros_client, tmp_path):
    import signal

    from myriad_storage.bag import recover

    ns = f"/rec3_{os.getpid()}"
    node_procs([SIM], ns, {"sim_server": {"renderer": "tiny"}}, log="sim.log")
    out = tmp_path / "bags"
    rec = node_procs([RECORDER], ns, {"recorder": {"output_dir": str(out), "topics": ["joint_states"]}})
    client = ros_client(ns)
    wait_recorded(client, [f"{ns}/joint_states"])
    header_only = None
    for _ in range(600):  # step until the periodic flush has written a chunk (every 5 s)
        assert client.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=24)).success
        files = list(out.glob("*.mcap"))
        header_only = header_only or (files[0].stat().st_size if files else None)
        if files and header_only and files[0].stat().st_size > header_only:
            break
    os.killpg(rec.pid, signal.SIGKILL)
    rec.wait(10)
    killed = one_file(out)
    copied = recover(killed, tmp_path / "recovered.mcap")
    msgs, types = read_all(tmp_path / "recovered.mcap")
    assert types == {f"{ns}/joint_states": "sensor_msgs/msg/JointState"} and copied == len(
        msgs[f"{ns}/joint_states"]
    )
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _t, m in msgs[f"{ns}/joint_states"]]
    assert copied > 0 and stamps == sorted(stamps)
