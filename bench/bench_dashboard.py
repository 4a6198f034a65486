"""Dashboard response times with a large database: overview API, filtered samples pages, the page, one attempt.

Usage: python bench/bench_dashboard.py [--uri URI] [--attempts 100000] [--items N] [--repeat 30]
Without --uri a LocalServer (secantusd-py subprocess, on-disk) is started in a temp dir. Attempt documents
(realistic fields, no images) are generated and insert_many'd straight into ``attempts`` after ensure_indexes();
created_at spreads over the last hours at 10 attempts/s, so the live window is populated too.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for pkg in ("myriad_storage", "myriad_frontend", "myriad_sim"):
    sys.path.insert(0, str(ROOT / "src" / pkg))

from bson import ObjectId  # noqa: E402

from myriad_frontend.dashboard import serve  # noqa: E402
from myriad_storage.server import LocalServer  # noqa: E402
from myriad_storage.store import Store  # noqa: E402

CAMPAIGN = "bench"


def attempt_doc(i: int, t_end: datetime, n: int) -> dict:
    obj = i % 40
    return {
        "attempt_key": f"{CAMPAIGN}/{i:06d}/0",
        "campaign": CAMPAIGN,
        "item_id": f"{CAMPAIGN}/{i:06d}",
        "item_index": i,
        "attempt_index": 0,
        "backend": f"b{i % 8}",
        "seed": i,
        "params": {"seed": i, "objects": 3, "grasp_depth": 0.02},
        "extra": {"outcome": "lifted" if i % 3 == 0 else "slipped", "target": f"obj{obj}", "moves": 4},
        "grasp": {"x": 0.6, "y": 0.01 * (i % 7), "z": 0.03, "yaw": 0.1 * (i % 31)},
        "objects": [
            {
                "name": f"obj{(obj + k) % 40}",
                "source": f"pybullet_data:random_urdfs/{(obj + k) % 40:03d}/{(obj + k) % 40:03d}.urdf",
                "position": [0.6, 0.01 * k, 0.02],
                "orientation": [0.0, 0.0, 0.0, 1.0],
            }
            for k in range(3)
        ],
        "success": i % 3 == 0,
        "lifted_object": f"obj{obj}" if i % 3 == 0 else "",
        "lift_height": 0.1 if i % 3 == 0 else 0.0,
        "timings": {
            "reset": 0.22,
            "capture_pre": 0.11,
            "reach": 0.13,
            "descend": 0.07,
            "close": 0.09,
            "lift": 0.14,
            "capture_post": 0.11,
            "total": 0.87,
            "encode": 0.04,
        },
        "sim_time": 6.2,
        "code_version": "bench",
        "camera": {"width": 472, "height": 472, "k": [648.4, 0, 236, 0, 648.4, 236, 0, 0, 1]},
        "images": {n: ObjectId() for n in ("pre_rgb", "pre_depth", "pre_segmentation", "post_rgb")},
        "created_at": t_end - timedelta(seconds=0.1 * (n - i)),
    }


def fill(store: Store, attempts: int, items: int) -> None:
    store.ensure_indexes()
    t = time.perf_counter()
    store.create_campaign(CAMPAIGN, [{"seed": i} for i in range(items)])
    print(f"campaign with {items} work items: {time.perf_counter() - t:.1f} s", flush=True)
    t, now = time.perf_counter(), datetime.now(UTC)
    for start in range(0, attempts, 5000):
        docs = [attempt_doc(i, now, attempts) for i in range(start, min(start + 5000, attempts))]
        store.db.attempts.insert_many(docs, ordered=False)
    print(f"{attempts} attempt documents inserted: {time.perf_counter() - t:.1f} s", flush=True)
    for b in range(8):
        store.heartbeat(f"b{b}", host="localhost", state="running", campaign=CAMPAIGN, attempts=attempts // 8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(url: str, repeat: int) -> tuple[float, float, int]:
    """(median ms, p95 ms, bytes) of GET url."""
    times, size = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=300) as r:
            size = len(r.read())
        times.append(1000 * (time.perf_counter() - t))
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uri", default=None)
    p.add_argument("--attempts", type=int, default=100_000)
    p.add_argument("--items", type=int, default=None, help="work items of the campaign (default: --attempts)")
    p.add_argument("--repeat", type=int, default=30)
    a = p.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench_dashboard_")
    server = None if a.uri else LocalServer(Path(tmp.name), port=free_port(), sync_on_commit=False)
    uri = a.uri or server.ensure_running()
    database = f"bench_dashboard_{int(time.time())}"
    store = Store(uri, database, server_timeout_ms=60_000)
    try:
        fill(store, a.attempts, a.items if a.items is not None else a.attempts)
        recent = datetime.now(UTC) - timedelta(minutes=10)
        for what, scan in (
            ("progress (a scan)", lambda: store.progress(CAMPAIGN, outcomes=True)),
            (
                "where the time goes, whole campaign (a scan; myriad status)",
                lambda: store.phase_times(CAMPAIGN),
            ),
            ("where the time goes, last 10 min (the dashboard)", lambda: store.phase_times(CAMPAIGN, recent)),
        ):
            t = time.perf_counter()
            scan()
            print(f"{what} of {a.attempts} attempts: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        dash = serve(uri, database, port=0)
        while b'"loading":true' in urllib.request.urlopen(dash.url + "api/overview").read():
            time.sleep(0.05)
        print(
            f"dashboard first overview (cold histogram + progress of {a.attempts}): {time.perf_counter() - t:.1f} s"
        )
        time.sleep(3)
        ticks0, t = dash.poller.ticks, time.perf_counter()
        time.sleep(10)
        per_tick = 10 / max(dash.poller.ticks - ticks0, 1)
        print(
            f"poller: one tick every {per_tick:.2f} s (interval 1 s; progress refresh {dash.poller.campaigns[CAMPAIGN].progress_cost:.1f} s)"
        )
        key = f"{CAMPAIGN}/{a.attempts // 2:06d}/0"
        cases = [
            ("page GET /", "", a.repeat),
            ("overview API", "api/overview", a.repeat),
            (
                "samples API campaign+label=success, page 1",
                f"api/samples?campaign={CAMPAIGN}&label=success&limit=50",
                max(5, a.repeat // 3),
            ),
            (
                "samples API campaign+label+backend, skip 1000",
                f"api/samples?campaign={CAMPAIGN}&label=success&backend=b3&skip=1000&limit=50",
                max(5, a.repeat // 3),
            ),
            (
                "samples API time range (last 10 min)",
                "api/samples?since=" + str(time.time() - 600) + "&limit=50",
                max(5, a.repeat // 3),
            ),
            ("attempt API (by key)", f"api/attempt?key={key}", a.repeat),
            (
                "work items API (state=pending, page)",
                f"api/work_items?campaign={CAMPAIGN}&state=pending&limit=50",
                max(5, a.repeat // 3),
            ),
        ]
        print(f"\n{'request':52s} {'median ms':>10s} {'p95 ms':>10s} {'bytes':>9s}   ({a.attempts} attempts)")
        for name, path, repeat in cases:
            med, p95, size = timed(dash.url + path, repeat)
            print(f"{name:52s} {med:10.1f} {p95:10.1f} {size:9d}", flush=True)
        dash.stop()
    finally:
        store.client.drop_database(database)
        store.close()
        if server is not None:
            server.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
