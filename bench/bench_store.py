"""Ingest capacity of the Myriad store: attempt documents/s, image MB/s (472x472 PNGs), claims/s.

Usage: python bench/bench_store.py [--uri URI] [--attempts N] [--items N] [--writes N]
Without --uri a LocalServer (secantusd-py subprocess, on-disk, sync-on-commit) is started in a temp dir.
--writes N (local server only): the server's CPU per update as N updates pile up, through the local server's URI
(no retryable writes) and with retryable writes, which SecantusDB keeps for 30 min and scans at every write.
Measured (2026-12-04, N = 11000): 0.76-0.87 ms flat without; with, 0.95 ms after 1,000, 1.8 ms after 10,000 and
6.6 ms after 11,000 (past 10,000 it sorts them at every write). Ingest through the local server's URI: 60 attempts/s,
server CPU 12-15 ms per attempt (32/s and 21 ms with retryable writes, an earlier day).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pymongo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "myriad_storage"))

from myriad_storage.codec import depth_to_png, encode_png, seg_to_png  # noqa: E402
from myriad_storage.server import LocalServer  # noqa: E402
from myriad_storage.store import Store  # noqa: E402

SIZE = 472


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tray-like synthetic scene: shaded background, a few boxes, sensor noise."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    depth = 1.0 + 0.05 * xx + 0.02 * yy
    rgb = np.stack([120 + 40 * xx, 110 + 30 * yy, 100 + 20 * xx * yy], axis=-1)
    seg = np.full((SIZE, SIZE), -1, np.int32)
    seg[100:380, 100:380] = 1  # tray
    for body in range(2, 7):
        x, y, w, h = (
            rng.integers(120, 330),
            rng.integers(120, 330),
            rng.integers(20, 50),
            rng.integers(20, 50),
        )
        depth[y : y + h, x : x + w] -= rng.uniform(0.03, 0.1)
        rgb[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        seg[y : y + h, x : x + w] = body
    rgb += rng.normal(0, 2.0, rgb.shape)
    depth += rng.normal(0, 0.0005, depth.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8), depth.astype(np.float32), seg


def images(rng: np.random.Generator) -> dict[str, bytes]:
    rgb, depth, seg = scene(rng)
    post, _, _ = scene(rng)
    return {
        "pre_rgb": encode_png(rgb),
        "pre_depth": depth_to_png(depth),
        "pre_segmentation": seg_to_png(seg),
        "post_rgb": encode_png(post),
    }


def record(campaign: str, i: int) -> dict:
    return {
        "attempt_key": f"{campaign}/{i:06d}/0",
        "campaign": campaign,
        "item_id": f"{campaign}/{i:06d}",
        "item_index": i,
        "attempt_index": 0,
        "backend": "bench",
        "seed": i,
        "params": {"seed": i, "objects": 5},
        "extra": {"planner": "RRTConnect", "planning_time": 0.25},
        "grasp": {"x": 0.5, "y": 0.1, "z": 0.05, "yaw": 0.3},
        "objects": [
            {"name": f"o{k}", "source": f"object:{k}", "body_id": k, "position": [0.5, 0.1, 0.7]}
            for k in range(5)
        ],
        "success": i % 4 != 0,
        "timings": {"reset": 0.1, "reach": 0.2, "grasp": 0.2, "lift": 0.1},
        "code_version": "bench",
        "camera": {"width": SIZE, "height": SIZE, "k": [400.0, 0, 236, 0, 400.0, 236, 0, 0, 1]},
    }


def server_cpu_meter(server: LocalServer | None):
    """CPU seconds of the local server process so far (0 for a given URI: not measurable from here)."""
    pid = server.pid() if server is not None else None
    if pid is None:
        return lambda: 0.0
    proc = psutil.Process(pid)
    return lambda: sum(proc.cpu_times()[:2])


def write_costs(uri: str, db: str, server_cpu, writes: int) -> None:
    """Server CPU per update_one as `writes` updates pile up, without and then with retryable writes."""
    for retry in (False, True):
        client = pymongo.MongoClient(uri, retryWrites=retry)  # the keyword overrides the URI's option
        coll = client[db]["writes"]
        coll.insert_one({"_id": retry, "n": 0})
        done, marks = 0, sorted({1000, writes // 2, max(1000, writes - 1000), writes})
        for mark in marks:
            c0, k = server_cpu(), mark - done
            for _ in range(k):
                coll.update_one({"_id": retry}, {"$inc": {"n": 1}})
            done = mark
            print(f"update_one {'with' if retry else 'without'} retryable writes, after {done}: server CPU "
                  f"{(server_cpu() - c0) / max(1, k) * 1e3:.2f} ms per write")  # fmt: skip
        client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--uri", default=None)
    ap.add_argument("--attempts", type=int, default=100)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--writes", type=int, default=0, help="updates for the retryable-writes figure (0: none)")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="myriad_bench_")
    server = None
    uri = a.uri
    if uri is None:
        server = LocalServer(Path(tmp.name), port=27177)
        uri = server.ensure_running()
    db = f"bench_{uuid.uuid4().hex[:8]}"
    store = Store(uri, db)
    try:
        store.ensure_indexes()
        rng = np.random.default_rng(0)
        t = time.perf_counter()
        sets = [images(rng) for _ in range(8)]
        enc = (time.perf_counter() - t) / len(sets)
        sizes = {k: np.mean([len(s[k]) for s in sets]) / 1e3 for k in sets[0]}
        per_attempt = sum(len(v) for v in sets[0].values())
        print(f"server: {store.masked_uri} ({'LocalServer, sync-on-commit' if server else 'given URI'})")
        print(f"PNG encode of 4 images: {enc * 1e3:.0f} ms per attempt; sizes kB: ", end="")
        print(", ".join(f"{k} {v:.0f}" for k, v in sizes.items()))

        n = a.attempts
        store.create_campaign("img", [{"seed": i} for i in range(n)])
        server_cpu = server_cpu_meter(server)
        t, window = time.perf_counter(), max(1, n // 4)
        for start in range(0, n, window):  # the cost must not grow with the images already stored
            t0, c0 = time.perf_counter(), server_cpu()
            for i in range(start, min(n, start + window)):
                store.store_attempt(record("img", i), sets[i % len(sets)])
            k = min(n, start + window) - start
            print(
                f"store_attempt with 4 images, attempts {start}-{start + k}: {k / (time.perf_counter() - t0):.1f}"
                f" attempts/s, server CPU {(server_cpu() - c0) / k * 1e3:.0f} ms per attempt"
            )
        dt = time.perf_counter() - t
        print(
            f"store_attempt with 4 images: {n / dt:.1f} attempts/s, "
            f"{n * per_attempt / dt / 1e6:.1f} MB/s of PNG ({per_attempt / 1e6:.2f} MB per attempt)"
        )

        m = 5 * n
        store.create_campaign("doc", [{"seed": i} for i in range(m)])
        t = time.perf_counter()
        for i in range(m):
            store.store_attempt(record("doc", i), {})
        dt = time.perf_counter() - t
        print(f"store_attempt without images: {m / dt:.0f} attempt documents/s")

        t = time.perf_counter()
        for i in range(50):
            store.store_attempt(record("doc", i), {})
        print(f"duplicate store_attempt (dropped): {50 / (time.perf_counter() - t):.0f}/s")

        t = time.perf_counter()
        store.create_campaign("claims", [{"seed": i} for i in range(a.items)])
        print(f"create_campaign with {a.items} items: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        k = 200
        for _ in range(k):
            store.claim("claims", "bench", 60.0)
        print(f"claim (campaign of {a.items} items): {k / (time.perf_counter() - t):.0f} claims/s")
        t = time.perf_counter()
        for _ in range(20):
            store.progress("claims")
        print(f"progress: {(time.perf_counter() - t) / 20 * 1e3:.0f} ms")
        if a.writes and server is not None:
            write_costs(server.uri, db, server_cpu, a.writes)
    finally:
        store.client.drop_database(db)
        store.close()
        if server is not None:
            server.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
