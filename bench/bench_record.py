"""What recording costs: MCAP writer throughput, recorder CPU per message, file size per attempt-equivalent.

    python bench/bench_record.py [--images 60] [--attempts 5]

1. Writer, in this process: real 472x472 renderings of the tray (rgb8, 32FC1 depth) and joint states, already
   serialized, written with BagWriter.write as the recorder does (zstd, lz4, none): MB/s, CPU ms per message,
   compressed size per message.
2. A real sim server process running attempt-equivalents (reset, capture, 3.6 s of sim, capture; joint
   states at 48 Hz): its CPU time alone, with a recorder composed into it (defaults, and images
   unthrottled; the difference is the recorder's cost), and a recorder in a process of its own; the file
   size per attempt-equivalent.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from myriad_frontend.processes import clean_shared_memory, ros_env, start_group, stop_groups

WS = Path(os.environ.get("MYRIAD_WS", Path(__file__).resolve().parents[1]))
STEPS_PER_ATTEMPT = 864  # 3.6 s of sim at 240 Hz, a scripted grasp attempt


def sample_messages(images: int) -> list[tuple[str, bytes]]:
    """(topic, CDR bytes) of real tray renderings and joint states, as a back end publishes them."""
    from mcap_ros2._dynamic import serialize_dynamic
    from sensor_msgs.msg import JointState

    from myriad_sim.image_codec import cv2_to_imgmsg
    from myriad_sim.spec import load_world
    from myriad_sim.world import World
    from myriad_storage.bag import full_definition, plain

    enc = {
        t: serialize_dynamic(t, full_definition(t))[t]
        for t in ("sensor_msgs/msg/Image", "sensor_msgs/msg/JointState")
    }
    world = World(load_world(WS / "worlds/tray.yaml"), "tiny")
    out = []
    for i in range(images):
        world.reset(seed=i, object_count=5)
        frame = world.capture()
        out.append(
            ("rgb", enc["sensor_msgs/msg/Image"](plain(cv2_to_imgmsg(frame.rgb, "rgb8", "camera_optical"))))
        )
        out.append(
            (
                "depth",
                enc["sensor_msgs/msg/Image"](plain(cv2_to_imgmsg(frame.depth, "32FC1", "camera_optical"))),
            )
        )
        for _ in range(10):
            world.step(5)
            names, pos, vel, eff = world.robot.all_joint_states()
            js = JointState(name=names, position=pos, velocity=vel, effort=eff)
            out.append(("joints", enc["sensor_msgs/msg/JointState"](plain(js))))
    world.close()
    return out


def bench_writer(messages: list[tuple[str, bytes]], tmp: Path) -> None:
    from myriad_storage.bag import BagWriter

    types = {
        "rgb": "sensor_msgs/msg/Image",
        "depth": "sensor_msgs/msg/Image",
        "joints": "sensor_msgs/msg/JointState",
    }
    for compression in ("zstd", "lz4", "none"):
        for kind in ("rgb", "depth", "joints"):
            data = [d for k, d in messages if k == kind]
            bag = BagWriter(tmp / f"w_{compression}_{kind}.mcap", compression)
            bag.add_topic(kind, types[kind])
            cpu0, t0 = time.process_time(), time.perf_counter()
            for i, d in enumerate(data):
                bag.write(kind, d, i)
            bag.close()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
            mb = bag.payload_bytes / 1e6
            size = bag.path.stat().st_size
            print(
                f"writer {compression:4} {kind:6}: {len(data):4} msgs of {len(data[0]) / 1e3:7.1f} kB, "
                f"{mb / wall:6.1f} MB/s, {cpu / len(data) * 1e3:6.2f} ms CPU/msg, "
                f"file {size / len(data) / 1e3:7.1f} kB/msg ({size / bag.payload_bytes:.0%} of payload)"
            )


def run_node(tmp: Path, attempts: int, recorder: dict | None, label: str, composed: bool = True) -> float:
    """Attempt-equivalents against a sim server process, with a recorder composed into it, in a second
    process, or none (recorder=None). Prints and returns the CPU seconds of the process holding the recorder
    (the sim's process when composed or without recorder)."""
    import rclpy
    import yaml
    from rclpy.executors import SingleThreadedExecutor

    from myriad_interfaces.srv import CaptureImages, ResetWorld, StepSimulation
    from myriad_runtime.calls import wait_future

    ns = f"/bench_rec_{os.getpid()}"
    out = tmp / label
    params = {
        f"{ns}/sim_server": {"ros__parameters": {"renderer": "tiny", "joint_state_rate": 48.0}},
        f"{ns}/recorder": {"ros__parameters": {"output_dir": str(out), **(recorder or {})}},
    }
    (tmp / "p.yaml").write_text(yaml.safe_dump(params))
    ros = [
        "--ros-args",
        "-r",
        f"__ns:={ns}",
        "-r",
        f"/clock:={ns}/clock",
        "--params-file",
        str(tmp / "p.yaml"),
    ]
    container = [sys.executable, "-m", "myriad_runtime.container", "--nodes"]
    sim_cls, rec_cls = "myriad_sim.sim_server_node:SimServerNode", "myriad_storage.recorder_node:RecorderNode"
    env = ros_env()
    procs = [start_group([*container, sim_cls, *([rec_cls] if recorder is not None and composed else []), *ros],
                         tmp / f"{label}_sim.log", env)]  # fmt: skip
    if recorder is not None and not composed:
        procs.append(start_group([*container, rec_cls, *ros], tmp / f"{label}_rec.log", env))
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_client", namespace=ns, context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:

        def call(srv, name, req):
            client = node.create_client(srv, name)
            assert client.wait_for_service(timeout_sec=60), name
            future = client.call_async(req)
            assert wait_future(future, 120), name
            return future.result()

        deadline = time.monotonic() + 60
        topics = [f"{ns}/camera/rgb/image", f"{ns}/joint_states"] if recorder is not None else []
        while any(node.count_subscribers(t) < 1 for t in topics):
            assert time.monotonic() < deadline, "recorder did not subscribe"
            time.sleep(0.1)
        for _ in range(10):  # let the sim's publishers match the recorder's subscriptions
            call(StepSimulation, "step_simulation", StepSimulation.Request(steps=24))
        time.sleep(1.0)
        proc = psutil.Process(procs[-1].pid)
        cpu0 = sum(proc.cpu_times()[:2])
        for i in range(attempts):
            call(ResetWorld, "reset_world", ResetWorld.Request(seed=i, object_count=5))
            call(CaptureImages, "capture_images", CaptureImages.Request())
            for _ in range(STEPS_PER_ATTEMPT // 24):
                call(StepSimulation, "step_simulation", StepSimulation.Request(steps=24))
            call(CaptureImages, "capture_images", CaptureImages.Request())
        time.sleep(4.0)  # the sim idles (10 Hz state) while the recorder writes what it received
        cpu = sum(proc.cpu_times()[:2]) - cpu0
    finally:
        ex.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
        stop_groups(procs)
        clean_shared_memory()
    text = f"node {label}: process CPU {cpu:.2f} s, {cpu / attempts:.2f} s per attempt-equivalent"
    if recorder is not None:
        from rosbags.highlevel import AnyReader

        path = next(out.glob("*.mcap"))
        with AnyReader([path]) as reader:
            counts = {c.topic[len(ns) + 1 :]: c.msgcount for c in reader.connections}
            payload = sum(len(raw) for _c, _t, raw in reader.messages())
        size = path.stat().st_size
        text += f"; {sum(counts.values())} msgs {counts}, payload {payload / 1e6:.1f} MB, "
        text += f"file {size / 1e6:.2f} MB = {size / attempts / 1e6:.2f} MB per attempt-equivalent"
    print(text)
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=60, help="renderings for the writer benchmark")
    ap.add_argument("--attempts", type=int, default=5, help="attempt-equivalents for the node benchmark")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_writer(sample_messages(args.images), tmp)
        base = run_node(tmp, args.attempts, None, "sim alone")
        for label, params in (("defaults", {}), ("unthrottled", {"camera_max_rate_hz": 0.0})):
            cpu = run_node(tmp, args.attempts, params, f"sim+recorder composed, {label}")
            print(f"  recorder cost: {(cpu - base) / args.attempts:.2f} s CPU per attempt-equivalent")
        run_node(
            tmp, args.attempts, {"camera_max_rate_hz": 0.0}, "recorder process, unthrottled", composed=False
        )


if __name__ == "__main__":
    main()
