"""Memory of one back end over a long collection: RSS against stored attempts, and whether it still grows.

    python bench/bench_memory.py [--attempts 500] [--seed 9] [--description config/backend.yaml]

Runs one back end as `myriad collect --backends 1` does, on a database of its own, and samples the RSS of its
processes every half second. Printed: RSS at each tenth of the run (by stored attempts), the peak, and the growth
over the second half in MB per 100 attempts. A leak of a fraction of a MB per attempt hides in bench_collect's
80-attempt rounds (a back end grew 338 -> 599 MB over 600 attempts before the planning world's renewal and
MALLOC_ARENA_MAX=2). Target (issue 10): <= 400 MB per back end, flat once warm.
"""

from __future__ import annotations

import argparse
import bisect
import sys
import tempfile
import threading
from datetime import UTC
from pathlib import Path

from bench_collect import WS, backend_rss

from myriad_frontend.campaign import make_spec
from myriad_frontend.collect import run_local
from myriad_storage.server import LocalServer
from myriad_storage.store import Store

MB = 2**20


def rss_at(samples: list[tuple[float, int]], t: float) -> int:
    """The last RSS sample taken at or before time t (the first one if none)."""
    k = bisect.bisect_right([s[0] for s in samples], t)
    return samples[max(0, k - 1)][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=500)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--description", type=Path, default=WS / "config" / "backend.yaml")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp) / "db", port=27198)
        uri = server.ensure_running()
        try:
            store = Store(uri, "bench")
            spec = make_spec("bench-memory", args.seed, args.attempts, {})
            stop, peak = threading.Event(), {}
            sampler = threading.Thread(target=backend_rss, args=(stop, peak, 1), daemon=True)
            sampler.start()
            result = run_local(
                store, spec, uri, "bench", 1, args.description, Path(tmp) / "runs", progress=False
            )
            stop.set()
            sampler.join()
            stamps = sorted(
                d["created_at"].replace(tzinfo=UTC).timestamp()
                for d in store.attempts({"campaign": spec.name})
            )
        finally:
            server.stop()
    samples = peak.get("rss_b0", [])
    if len(stamps) < 10 or not samples:
        sys.exit(f"too few stored attempts ({len(stamps)}) or RSS samples ({len(samples)}) to report")
    print(f"one back end, {result.done} attempts stored in {result.seconds:.0f} s, campaign seed {args.seed}")
    print(f"{'attempts':>9}{'RSS MB':>9}")
    marks = [len(stamps) * k // 10 for k in range(1, 11)]
    for n in marks:
        print(f"{n:9d}{rss_at(samples, stamps[n - 1]) / MB:9.0f}")
    half, last = marks[4], marks[-1]
    growth = (
        (rss_at(samples, stamps[last - 1]) - rss_at(samples, stamps[half - 1])) / MB / (last - half) * 100
    )
    print(f"peak RSS        : {peak['b0'] / MB:.0f} MB  (target <= 400 MB)")
    print(f"second half     : {growth:+.1f} MB per 100 attempts (attempts {half}-{last}; flat: about 0)")


if __name__ == "__main__":
    main()
