"""`myriad export` rate (attempts/s) and peak memory (RSS) for campaigns of 1k and 10k attempts, both formats.

Usage: python bench/bench_export.py [--sizes 1000,10000] [--image 128] [--distinct 32]
Attempts are generated directly in the database (a LocalServer in a temp dir): `--distinct` sets of synthetic
tray images of `--image` pixels square (pre RGB/depth/segmentation, post RGB) are uploaded to GridFS once and
referenced by all attempt documents, so the export reads every image from GridFS as it would in a real campaign,
but the database holds fewer bytes. Each export runs in a fresh process that reports its own peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "myriad_storage"))

from myriad_storage.codec import depth_to_png, encode_png, seg_to_png  # noqa: E402
from myriad_storage.server import LocalServer  # noqa: E402
from myriad_storage.store import Store  # noqa: E402


def fill(store: Store, name: str, n: int, size: int, distinct: int) -> None:
    store.create_campaign(name, [{"seed": i} for i in range(n)])
    rng = np.random.default_rng(0)
    sets = []
    for j in range(distinct):
        rgb = rng.integers(90, 160, (size, size, 3), dtype=np.uint8)
        pngs = {
            "pre_rgb": encode_png(rgb),
            "pre_depth": depth_to_png(rng.uniform(0.8, 1.2, (size, size)).astype(np.float32)),
            "pre_segmentation": seg_to_png(rng.integers(-1, 6, (size, size), dtype=np.int32)),
            "post_rgb": encode_png(rgb[::-1]),
        }
        sets.append({k: store.bucket.upload_from_stream(f"{name}/{j}/{k}.png", v) for k, v in pngs.items()})
    k = [float(size), 0.0, size / 2, 0.0, float(size), size / 2, 0.0, 0.0, 1.0]
    docs = [
        {
            "attempt_key": f"{name}/{i:06d}/0", "campaign": name, "item_id": f"{name}/{i:06d}",
            "item_index": i, "attempt_index": 0, "backend": "b0", "seed": i, "params": {"seed": i},
            "grasp": {"x": 0.6, "y": 0.0, "z": 0.05, "yaw": 0.1 * (i % 30)}, "success": i % 3 != 0,
            "camera": {"width": size, "height": size, "k": k}, "images": sets[i % distinct],
            "extra": {"outcome": "lifted"}, "objects": [], "created_at": datetime.now(UTC),
        }
        for i in range(n)
    ]  # fmt: skip
    for s in range(0, n, 1000):
        store.db.attempts.insert_many(docs[s : s + 1000])


def child(uri: str, name: str, fmt: str, out: str) -> None:
    from myriad_storage.export import export

    store = Store(uri, "bench")
    t0 = time.perf_counter()
    r = export(store, name, fmt, Path(out), progress=False)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"attempts": r.attempts, "seconds": dt, "peak_rss_mb": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--image", type=int, default=128)
    ap.add_argument("--distinct", type=int, default=32)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp) / "db", port=27400 + int(time.time()) % 500)
        uri = server.ensure_running()
        try:
            store = Store(uri, "bench")
            for n in (int(s) for s in a.sizes.split(",")):
                name = f"bench{n}"
                t0 = time.perf_counter()
                fill(store, name, n, a.image, a.distinct)
                print(
                    f"{n} attempts ({a.image}x{a.image} images) generated in {time.perf_counter() - t0:.1f} s"
                )
                for fmt in ("parquet", "lerobot"):
                    out = Path(tmp) / f"{name}-{fmt}"
                    cmd = [sys.executable, __file__, "--child", uri, name, fmt, str(out)]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode:
                        sys.exit(f"export {fmt} failed: {proc.stderr[-2000:]}")
                    res = json.loads(proc.stdout)
                    mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
                    print(f"  {fmt:8s} {res['attempts']} attempts in {res['seconds']:.1f} s = "
                          f"{res['attempts'] / res['seconds']:.0f} attempts/s, peak RSS {res['peak_rss_mb']:.0f} MB, "
                          f"output {mb:.0f} MB")  # fmt: skip
            store.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
