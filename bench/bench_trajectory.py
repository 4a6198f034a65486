"""The cost of recording trajectories: attempts/s without, with the 10 Hz trajectory, and with camera frames too;
bytes stored per attempt.

    python bench/bench_trajectory.py [--attempts 20] [--camera-rate 5] [--camera-size 128] [--ros]

Direct in-process attempts (run_attempt over the in-process back end, the same recorder as the sim server's), the
same seeds for every setting, settings interleaved attempt by attempt so that a changing machine load hits them
alike; an attempt's time includes building what the logger stores (the trajectory's bytes and the frames' PNG).
With --ros, also `myriad collect`'s path (1 back end, the nodes of config/backend.yaml) with trajectory_rate 0 and
10: steady attempts/s from the stored attempts' times.
Measured (2026-12-01, 2 cores shared with other work, load average 6-12): 20 attempts in-process, 10 Hz: +0.4 %
CPU per attempt (6.7 ms in the recorder of 1.27 s), 51 samples, 7.0 kB per attempt in the document; with 5 Hz
128 px camera frames: +27 % CPU (0.32 s rendering), 676 kB of PNG per attempt. myriad collect 8 attempts per run,
with/without/with/without: 0.250, 0.216, 0.318, 0.326 attempts/s (run-to-run load noise exceeds the cost).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import bson
import numpy as np

from myriad.local import LocalBackend, LocalGraspBackend
from myriad_frontend.campaign import make_spec
from myriad_grasping.episode import run_attempt
from myriad_grasping.sampling import GraspParams
from myriad_sim.spec import load_world
from myriad_storage.records import trajectory_record

WS = Path(os.environ.get("MYRIAD_WS", Path(__file__).resolve().parents[1]))


def timed(fn, total: list[float]):
    """`fn`, adding its CPU time to total[0]."""

    def wrapper(*args, **kwargs):
        c0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            total[0] += time.process_time() - c0

    return wrapper


def direct(items: list[dict], settings: dict[str, tuple[float, float, int]]) -> dict[str, dict]:
    """Per setting: attempt times (s) and stored bytes (trajectory field as BSON, frames PNG) of each item."""
    spec = load_world(WS / "worlds" / "tray.yaml")
    backends = {k: LocalGraspBackend(LocalBackend(spec, "tiny", *v)) for k, v in settings.items()}
    out = {k: {"s": [], "cpu": [], "rec": [0.0], "doc": [], "png": [], "samples": []} for k in settings}
    for name, backend in backends.items():  # CPU time inside the recorder (sampling and rendering)
        recorder = backend.local.world.recorder
        if recorder is not None:
            recorder.sample = timed(recorder.sample, out[name]["rec"])
    region = spec.objects
    for item in items:
        for name, backend in backends.items():
            t0, c0 = time.perf_counter(), time.process_time()
            a = run_attempt(
                backend, GraspParams.from_dict(item), item["seed"], region.region_x, region.region_y
            )
            doc, images = trajectory_record(a.trajectory)
            out[name]["s"].append(time.perf_counter() - t0)
            out[name]["cpu"].append(time.process_time() - c0)
            out[name]["doc"].append(len(bson.encode({"trajectory": doc})) if doc else 0)
            out[name]["png"].append(sum(len(v) for v in images.values()))
            out[name]["samples"].append(len(a.trajectory) if a.trajectory else 0)
    for b in backends.values():
        b.local.close()
    return out


def ros(items_n: int, rate: float) -> float:
    """Steady attempts/s of `myriad collect`'s path with trajectory_rate `rate`."""
    from myriad_frontend.collect import run_local
    from myriad_storage.server import LocalServer
    from myriad_storage.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        text = (
            (WS / "config" / "backend.yaml")
            .read_text()
            .replace("trajectory_rate: 10.0", f"trajectory_rate: {rate}")
        )
        description = Path(tmp) / "backend.yaml"
        description.write_text(text)
        server = LocalServer(Path(tmp) / "db", port=27198)
        uri = server.ensure_running()
        store = Store(uri, "bench")
        spec = make_spec("bench", 5, items_n, {})
        run_local(store, spec, uri, "bench", 1, description, Path(tmp) / "runs", progress=False)
        docs = sorted(store.attempts({"campaign": "bench"}), key=lambda d: d["created_at"])
        span = (docs[-1]["created_at"] - docs[0]["created_at"]).total_seconds()
        store.close()
        server.stop()
    return (len(docs) - 1) / span


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=20)
    ap.add_argument("--camera-rate", type=float, default=5.0)
    ap.add_argument("--camera-size", type=int, default=128)
    ap.add_argument("--ros", action="store_true", help="also measure myriad collect's path with and without")
    args = ap.parse_args()
    items = list(make_spec("bench", 5, args.attempts, {}).items())
    settings = {
        "off": (0.0, 0.0, 0),
        "10 Hz": (10.0, 0.0, 0),
        f"10 Hz + {args.camera_rate:g} Hz {args.camera_size}px": (10.0, args.camera_rate, args.camera_size),
    }
    res = direct(items, settings)
    base, base_cpu = sum(res["off"]["s"]), sum(res["off"]["cpu"])
    print(f"{args.attempts} attempts per setting, in-process, TinyRenderer, same seeds, interleaved")
    for name, r in res.items():
        total, cpu, n = sum(r["s"]), sum(r["cpu"]), len(r["s"])
        print(
            f"{name:>24}: {n / total:.3f} attempts/s wall ({100 * (total / base - 1):+.1f} % time), CPU "
            f"{cpu / n:.3f} s per attempt ({100 * (cpu / base_cpu - 1):+.1f} %), of it {1e3 * r['rec'][0] / n:.1f} ms "
            f"in the recorder; {np.mean(r['samples']):.0f} samples, {np.mean(r['doc']) / 1e3:.1f} kB in the "
            f"document, {np.mean(r['png']) / 1e3:.1f} kB of frames (PNG) per attempt"
        )
    if args.ros:  # alternating runs: the load of a shared machine drifts between runs
        runs = [(rate, ros(args.attempts, rate)) for rate in (10.0, 0.0, 10.0, 0.0)]
        on, off = (sum(r for rate, r in runs if rate == k) / 2 for k in (10.0, 0.0))
        print(f"myriad collect, 1 back end, runs with/without/with/without: {[round(r, 3) for _, r in runs]} "
              f"attempts/s; {100 * (on / off - 1):+.1f} % with 10 Hz")  # fmt: skip


if __name__ == "__main__":
    main()
