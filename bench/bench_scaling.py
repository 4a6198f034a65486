"""Throughput with 1, 2 and 4 local back ends as ratios to one, and the store's ingest capacity, in one run.

    python bench/bench_scaling.py [--per-backend 10]

Each configuration collects `per-backend x N` attempts on a fresh campaign; the rate is the steady one between
the first and the last stored attempt. Ingest capacity (attempt documents with their four PNGs) is measured on
the same server afterwards, and from it how many back ends one store can serve. Target: 2 back ends >= 1.8x one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from myriad_frontend.campaign import make_spec
from myriad_frontend.collect import run_local
from myriad_storage.server import LocalServer
from myriad_storage.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from bench_store import images, record  # noqa: E402

WS = Path(os.environ.get("MYRIAD_WS", Path(__file__).resolve().parents[1]))


def steady_rate(store: Store, campaign: str) -> float:
    docs = sorted(store.attempts({"campaign": campaign}), key=lambda d: d["created_at"])
    return (len(docs) - 1) / (docs[-1]["created_at"] - docs[0]["created_at"]).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-backend", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp) / "db", port=27198)
        uri = server.ensure_running()
        store = Store(uri, "scaling")
        rates = {}
        for n in (1, 2, 4):
            spec = make_spec(f"scale-{n}", n, args.per_backend * n, {})
            run_local(
                store,
                spec,
                uri,
                "scaling",
                n,
                WS / "config" / "backend.yaml",
                Path(tmp) / "runs",
                progress=False,
            )
            rates[n] = steady_rate(store, spec.name)
            print(f"{n} back end(s): {rates[n]:.2f} attempts/s  ratio {rates[n] / rates[1]:.2f}", flush=True)
        rng = np.random.default_rng(0)
        sets = [images(rng) for _ in range(4)]
        per_attempt = sum(len(v) for v in sets[0].values())
        store.create_campaign("ingest", [{"seed": i} for i in range(40)])
        t = time.perf_counter()
        for i in range(40):
            store.store_attempt(record("ingest", i), sets[i % 4])
        ingest = 40 / (time.perf_counter() - t)
        server.stop()
    per_backend = rates[1]
    print(f"store ingest: {ingest:.1f} attempts/s with images, {ingest * per_attempt / 1e6:.1f} MB/s of PNG")
    print(
        f"one back end produces {per_backend:.2f} attempts/s: one store serves about {ingest / per_backend:.0f} back ends"
    )
    print(
        f"2 back ends / 1: {rates[2] / rates[1]:.2f} (target >= 1.8 on 2 cores); 4 / 1: {rates[4] / rates[1]:.2f}"
    )


if __name__ == "__main__":
    main()
