"""Full ROS 2 path vs direct library calls: attempts/s ratio, RSS per back end, time to the first stored attempt.

    python bench/bench_collect.py [--attempts 20]

Both paths run the same attempts (same seeds, same run_attempt script, same PNG storage in a real database):
the ROS one as `myriad collect` runs it (sim server + controllers, planner, sampler, logger in 2 processes),
the direct one with World, Planner and controllers called in this process. Targets: ratio >= 0.85,
<= 400 MB per back end, first sample <= 15 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil

from myriad.local import LocalBackend, LocalGraspBackend
from myriad_frontend.campaign import make_spec
from myriad_frontend.collect import run_local
from myriad_frontend.description import load_description
from myriad_grasping.episode import run_attempt
from myriad_grasping.sampling import GraspParams
from myriad_sim.spec import load_world
from myriad_storage.codec import depth_to_png, encode_png, seg_to_png
from myriad_storage.server import LocalServer
from myriad_storage.store import Store

WS = Path(os.environ.get("MYRIAD_WS", Path(__file__).resolve().parents[1]))


def run_direct(store: Store, spec, region, renderer: str) -> tuple[float, float]:
    """Attempts/s in one process, storing each attempt like the logger does; returns (steady, overall)."""
    local = LocalBackend(load_world(WS / "worlds" / "tray.yaml"), renderer)
    backend = LocalGraspBackend(local)
    stamps, start = [], time.perf_counter()
    for i, item in enumerate(spec.items()):
        a = run_attempt(backend, GraspParams.from_dict(item), item["seed"], region.region_x, region.region_y)
        pre, post = a.pre_images, a.post_images
        images = {"pre_rgb": encode_png(pre.rgb), "pre_depth": depth_to_png(pre.depth),
                  "pre_segmentation": seg_to_png(pre.segmentation), "post_rgb": encode_png(post.rgb)}  # fmt: skip
        key = f"direct/{i:06d}#0"
        store.store_attempt(
            {"attempt_key": key, "campaign": "direct", "item_id": key, "success": a.success}, images
        )
        stamps.append(time.perf_counter())
    local.close()
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps) / (stamps[-1] - start)


def backend_rss(stop: threading.Event, peak: dict) -> None:
    """Peak summed RSS of this run's back end b0: our child processes whose command line has its namespace."""
    me = psutil.Process()
    while not stop.is_set():
        total = 0
        for p in me.children(recursive=True):
            try:
                if any("__ns:=/myriad/b0" in c for c in p.cmdline()):
                    total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        peak["rss"] = max(peak.get("rss", 0), total)
        stop.wait(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp) / "db", port=27199)
        uri = server.ensure_running()
        store = Store(uri, "bench")
        spec = make_spec("bench-ros", 5, args.attempts, {})
        region = load_world(WS / "worlds" / "tray.yaml").objects
        stop, peak = threading.Event(), {}
        sampler = threading.Thread(target=backend_rss, args=(stop, peak), daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        result = run_local(
            store, spec, uri, "bench", 1, WS / "config" / "backend.yaml", Path(tmp) / "runs", progress=False
        )
        stop.set()
        ros_overall = result.done / (time.perf_counter() - t0)
        docs = sorted(store.attempts({"campaign": "bench-ros"}), key=lambda d: d["created_at"])
        span = (docs[-1]["created_at"] - docs[0]["created_at"]).total_seconds()
        ros_steady = (len(docs) - 1) / span
        desc = load_description(WS / "config" / "backend.yaml")
        renderer = next(n for n in desc.nodes() if n.name == "sim_server").parameters.get("renderer", "auto")
        direct_steady, direct_overall = run_direct(store, spec, region, renderer)
        server.stop()
    print(f"attempts: {args.attempts} per path, 1 back end, 2 cores, renderer {renderer}")
    print(f"ROS 2 path      : {ros_steady:.2f} attempts/s steady ({ros_overall:.2f}/s including start-up)")
    print(
        f"direct calls    : {direct_steady:.2f} attempts/s steady ({direct_overall:.2f}/s including set-up)"
    )
    print(f"ratio ROS/direct: {ros_steady / direct_steady:.2f}  (target >= 0.85)")
    print(f"RSS per back end: {peak.get('rss', 0) / 2**20:.0f} MB peak  (target <= 400 MB)")
    print(
        f"first sample    : {result.first_attempt_s:.1f} s from command to first stored attempt  (target <= 15 s)"
    )


if __name__ == "__main__":
    main()
