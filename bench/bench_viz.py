"""Cost of the visualization topics (TF, robot_description, point cloud, markers) on attempts/s and RSS.

    python bench/bench_viz.py [--attempts 30] [--rounds 2] [--watch]

One back end through `myriad collect`'s launcher, the same attempts (same seed) with `visualization` on (the
default) and off for the sim server, planner and grasp sampler, alternating on/off so that a change in machine
load hits both. TF and the point cloud are only built while someone subscribes: --watch subscribes to them (and
the markers) from this process, as RViz would. Target: <= 5 % fewer attempts/s with visualization on.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
from pathlib import Path

import yaml
from bench_collect import WS, backend_rss

from myriad_frontend.campaign import make_spec
from myriad_frontend.collect import run_local
from myriad_storage.server import LocalServer
from myriad_storage.store import Store


def description_without_viz(path: Path) -> Path:
    data = yaml.safe_load((WS / "config" / "backend.yaml").read_text())
    for node in ("sim_server", "planner", "grasp_sampler"):
        data["nodes"][node].setdefault("parameters", {})["visualization"] = False
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(
    store: Store, uri: str, name: str, attempts: int, description: Path, runs: Path
) -> tuple[float, float]:
    """Steady attempts/s (first to last stored attempt) and peak RSS (MB) of one back end."""
    stop, peak = threading.Event(), {}
    sampler = threading.Thread(target=backend_rss, args=(stop, peak), daemon=True)
    sampler.start()
    run_local(store, make_spec(name, 5, attempts, {}), uri, "bench", 1, description, runs, progress=False)
    stop.set()
    docs = sorted(store.attempts({"campaign": name}), key=lambda d: d["created_at"])
    span = (docs[-1]["created_at"] - docs[0]["created_at"]).total_seconds()
    return (len(docs) - 1) / span, peak.get("rss", 0) / 2**20


def watch(stop: threading.Event) -> None:
    """Subscribe to back end b0's TF, point cloud and markers until `stop` (an RViz stand-in)."""
    import rclpy
    import rclpy.executors
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from sensor_msgs.msg import PointCloud2
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import MarkerArray

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_viz_watcher", context=context)
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    for kind, topic, qos in ((TFMessage, "/tf", 100), (TFMessage, "/tf_static", latched),
                             (PointCloud2, "/myriad/b0/camera/points", 2), (MarkerArray, "/myriad/b0/markers", latched)):  # fmt: skip
        node.create_subscription(kind, topic, lambda _m: None, qos)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    node.destroy_node()
    context.try_shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--watch", action="store_true", help="subscribe to the visualization topics, as RViz would"
    )
    args = ap.parse_args()
    stop = threading.Event()
    if args.watch:
        threading.Thread(target=watch, args=(stop,), daemon=True).start()
    rates: dict[str, list[float]] = {"on": [], "off": []}
    rss: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp) / "db", port=27198)
        uri = server.ensure_running()
        store = Store(uri, "bench")
        descriptions = {
            "on": WS / "config" / "backend.yaml",
            "off": description_without_viz(Path(tmp) / "backend_noviz.yaml"),
        }
        for r in range(args.rounds):
            for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                rate, mb = run(
                    store, uri, f"viz-{mode}-{r}", args.attempts, descriptions[mode], Path(tmp) / "runs"
                )
                rates[mode].append(rate)
                rss[mode].append(mb)
                print(f"round {r} visualization {mode:3}: {rate:.3f} attempts/s, {mb:.0f} MB", flush=True)
        server.stop()
    stop.set()
    on, off = statistics.mean(rates["on"]), statistics.mean(rates["off"])
    print(f"attempts/s with visualization {on:.3f}, without {off:.3f}: {100 * (1 - on / off):+.1f} % slower "
          f"(target <= 5 %); RSS per back end {max(rss['on']):.0f} MB with, {max(rss['off']):.0f} MB without")  # fmt: skip


if __name__ == "__main__":
    main()
