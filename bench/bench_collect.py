"""Throughput per core: the full ROS 2 path vs the same attempts by direct library calls, where the time goes.

    python bench/bench_collect.py [--attempts 40] [--backends 2] [--strategy object] [--direct-only] [--rounds 1]
                                  [--description config/backend.yaml]

Both paths run the same attempts (same seeds, same run_attempt script, the same records and PNGs stored in a real
database; the direct path without the work items' claims, leases and heartbeats): the ROS one as `myriad collect
--backends N` runs it, the direct one in N processes calling World, Planner and the controllers. Printed:
per-phase time per attempt (wall from the attempt documents' `timings`, CPU and physics steps of the direct path),
stored attempts/s per core (steady: first to last stored attempt of each back end), CPU per attempt of a back end
and of its executor thread (where the ROS overhead runs) and of the database server on each path, their ratio,
peak RSS per back end, time to the first stored attempt, and the success rate with its 95 % Wilson interval (the
two paths must give the same labels: a determinism check). With --rounds N the two paths alternate N times (this
host's speed drifts by more than one change moves the ratio) and the ratios are summarised. Targets (issue 10):
>= 1.5 attempts/s per core through ROS, ratio >= 0.95, <= 400 MB per back end, first sample <= 15 s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC
from pathlib import Path

import psutil

from myriad.local import LocalBackend, LocalGraspBackend
from myriad_frontend.campaign import make_spec
from myriad_frontend.collect import run_local
from myriad_frontend.description import load_description
from myriad_grasping.episode import run_attempt
from myriad_grasping.sampling import GraspParams
from myriad_sim.frames import camera_record
from myriad_sim.spec import load_world
from myriad_storage.codec import depth_to_png, encode_png, seg_to_png
from myriad_storage.records import attempt_record, object_record, trajectory_record
from myriad_storage.server import LocalServer
from myriad_storage.store import Store

TRAJECTORY_RATE = 10.0  # Hz, as config/backend.yaml's sim server records
WS = Path(os.environ.get("MYRIAD_WS", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
PHASES = ("reset", "capture_pre", "reach", "descend", "close", "lift", "capture_post", "encode", "store")


class Meter:
    """LocalGraspBackend with CPU time and physics steps charged to the attempt's phases (as run_attempt's laps
    name them; sampling the grasp counts towards `reach`, reading the objects after the lift towards `lift`)."""

    def __init__(self, backend: LocalGraspBackend):
        self.backend, self.world = backend, backend.local.world
        self.cpu: dict[str, float] = defaultdict(float)
        self.steps: dict[str, int] = defaultdict(int)
        self._moves, self._captures, self._clock = 0, 0, time.process_time()

    def charge(self, phase: str, fn, *args, **kwargs):
        steps = 0 if phase == "reset" else self.world.steps  # a reset starts the step count again
        try:
            return fn(*args, **kwargs)
        finally:
            now = time.process_time()
            self.cpu[phase] += now - self._clock
            self.steps[phase] += self.world.steps - steps
            self._clock = now

    def reset(self, seed, object_count):
        self._moves, self._captures = 0, 0
        self._clock = time.process_time()
        return self.charge("reset", self.backend.reset, seed, object_count)

    def capture(self):
        self._captures += 1
        return self.charge("capture_pre" if self._captures == 1 else "capture_post", self.backend.capture)

    def view(self, images):
        return self.backend.view(images)

    def move(self, kind, position, orientation, seed, max_contact_force=0.0):
        self._moves += 1
        phase = ("reach", "descend", "lift")[min(self._moves, 3) - 1]
        return self.charge(phase, self.backend.move, kind, position, orientation, seed, max_contact_force)

    def gripper(self, opening, force):
        return self.charge("reach" if opening > 0 else "close", self.backend.gripper, opening, force)

    def object_positions(self):
        return self.charge("lift", self.backend.object_positions)

    def trajectory(self):
        return self.backend.trajectory()


def encode_images(pre, post) -> dict[str, bytes]:
    """The four stored PNGs of an attempt, as the logger encodes them."""
    return {"pre_rgb": encode_png(pre.rgb), "pre_depth": depth_to_png(pre.depth),
            "pre_segmentation": seg_to_png(pre.segmentation), "post_rgb": encode_png(post.rgb)}  # fmt: skip


def store_direct(
    store: Store, local: LocalBackend, a, tag: str, item: dict, images: dict[str, bytes]
) -> None:
    """Store an attempt by direct calls with the record the logger stores (myriad_storage.records.attempt_record:
    parameters, objects, camera, trajectory), but no work-item bookkeeping (no claims, leases or heartbeats)."""
    key = f"{tag}/{item['seed']}#0"
    trajectory, film = trajectory_record(a.trajectory)
    record = attempt_record(
        attempt_key=key, campaign=tag, item_id=key, item_index=0, attempt_index=0, backend=tag, seed=a.seed,
        params=a.params.to_dict(),
        extra={"outcome": a.outcome, "grasp_executed": a.grasp_executed, "target": a.target, "moves": a.moves,
               "source": "bench"},
        grasp={"x": a.grasp.x, "y": a.grasp.y, "z": a.grasp.z, "yaw": a.grasp.yaw},
        objects=[object_record(n, s, 0, p, (0.0, 0.0, 0.0, 1.0)) for n, s, p in a.objects],
        success=bool(a.success), lifted_object=a.lifted_object, lift_height=a.lift_height, timings=a.timings,
        sim_time=0.0, code_version="bench", camera=camera_record(local.world.camera), trajectory=trajectory,
    )  # fmt: skip
    store.store_attempt(record, {**images, **film})


def direct_worker(uri: str, items: list[dict], renderer: str, tag: str) -> dict:
    """Run and store `items` in this process like a back end does; per-phase sums, labels, steady rate."""
    local = LocalBackend(load_world(WS / "worlds" / "tray.yaml"), renderer, TRAJECTORY_RATE)
    meter, region, store = Meter(LocalGraspBackend(local)), local.spec.objects, Store(uri, "bench")
    wall: dict[str, float] = defaultdict(float)
    labels, stamps = {}, []
    for item in items:
        a = run_attempt(meter, GraspParams.from_dict(item), item["seed"], region.region_x, region.region_y)
        t0 = time.perf_counter()
        images = meter.charge("encode", encode_images, a.pre_images, a.post_images)
        t1 = time.perf_counter()
        meter.charge("store", store_direct, store, local, a, tag, item, images)
        stamps.append(time.perf_counter())
        for phase, seconds in {**a.timings, "encode": t1 - t0, "store": stamps[-1] - t1}.items():
            wall[phase] += seconds
        labels[item["seed"]] = (a.outcome, a.success)
    local.close()
    store.close()
    n = len(items)
    return {"n": n, "wall": dict(wall), "cpu": dict(meter.cpu), "steps": dict(meter.steps), "labels": labels,
            "rate": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else 0.0}  # fmt: skip


def run_direct(uri: str, items: list[dict], renderer: str, jobs: int, round_: int = 0) -> list[dict]:
    """direct_worker over `jobs` processes, items dealt round robin."""
    chunks = [(uri, items[k::jobs], renderer, f"direct{round_}-{k}") for k in range(jobs)]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        return pool.starmap(direct_worker, chunks)


def backend_rss(stop: threading.Event, peak: dict, backends: int = 1) -> None:
    """Peak summed RSS of each back end bN of this run (our child processes whose command line has its namespace):
    peak["bN"], and peak["rss"] for b0; peak["cpu_bN"]: (wall time, CPU seconds so far) samples of its processes,
    peak["executor_bN"] the same of their main threads (a node process spins its executor there); peak["rss_bN"]:
    (wall time, RSS bytes) samples."""
    me = psutil.Process()
    cpu: dict[int, float] = {}  # pid -> CPU seconds, kept after the process ends
    main: dict[int, float] = {}  # pid -> CPU seconds of its main thread
    while not stop.is_set():
        total: dict[str, int] = defaultdict(int)
        pids: dict[str, list[int]] = defaultdict(list)
        for p in me.children(recursive=True):
            try:
                cmd = p.cmdline()
                for i in range(backends):
                    if any(c == f"__ns:=/myriad/b{i}" for c in cmd):
                        total[f"b{i}"] += p.memory_info().rss
                        t = p.cpu_times()
                        cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                        main[p.pid] = next(
                            (th.user_time + th.system_time for th in p.threads() if th.id == p.pid), 0.0
                        )
                        pids[f"b{i}"].append(p.pid)
            except psutil.NoSuchProcess:
                pass
        now = time.time()
        for k, v in total.items():
            peak[k] = max(peak.get(k, 0), v)
            peak.setdefault(f"cpu_{k}", []).append((now, sum(cpu[p] for p in pids[k])))
            peak.setdefault(f"executor_{k}", []).append((now, sum(main[p] for p in pids[k])))
            peak.setdefault(f"rss_{k}", []).append((now, v))
        peak["rss"] = peak.get("b0", 0)
        stop.wait(0.5)


def ros_cpu_per_attempt(docs: list[dict], peak: dict, series: str = "cpu") -> float:
    """Back-end CPU seconds per stored attempt (series "executor": of its executor threads), from each back end's
    first to its last stored attempt."""
    cpu, n = 0.0, 0
    for b in {d["backend"] for d in docs}:
        stamps = sorted(d["created_at"].replace(tzinfo=UTC).timestamp() for d in docs if d["backend"] == b)
        samples = peak.get(f"{series}_{b}", [])
        if len(stamps) > 1 and samples:
            at = {t: min(samples, key=lambda s, t=t: abs(s[0] - t))[1] for t in (stamps[0], stamps[-1])}
            cpu, n = cpu + at[stamps[-1]] - at[stamps[0]], n + len(stamps) - 1
    return cpu / max(1, n)


def per_backend_rates(docs: list[dict]) -> dict[str, float]:
    """Steady stored attempts/s of each back end: from its first to its last stored attempt."""
    by: dict[str, list] = defaultdict(list)
    for d in docs:
        by[d["backend"]].append(d["created_at"])
    return {
        b: (len(t) - 1) / max(1e-9, (max(t) - min(t)).total_seconds())
        for b, t in sorted(by.items())
        if len(t) > 1
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=40)
    ap.add_argument("--backends", type=int, default=2, help="back ends (ROS) and processes (direct)")
    ap.add_argument("--strategy", default="object")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--direct-only", action="store_true", help="skip the ROS path")
    ap.add_argument(
        "--rounds", type=int, default=1, help="ROS and direct runs alternated (this host's speed drifts)"
    )
    ap.add_argument(
        "--description", type=Path, default=WS / "config" / "backend.yaml",
        help="the ROS path's back-end description (a copy with `executor: rclpy` compares the executors)",
    )  # fmt: skip
    args = ap.parse_args()
    cores = min(args.backends, os.cpu_count() or 1)
    desc = load_description(args.description)
    renderer = next(n for n in desc.nodes() if n.name == "sim_server").parameters.get("renderer", "auto")
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp) / "db", port=27199)
        uri = server.ensure_running()
        try:
            store, rates = Store(uri, "bench"), []
            for k in range(args.rounds):
                spec = make_spec(f"bench-ros-{k}", args.seed, args.attempts, {"strategy": args.strategy})
                if args.rounds > 1:
                    print(f"--- round {k + 1} of {args.rounds}")
                rates.append(run_round(args, store, server, uri, spec, cores, renderer, k, Path(tmp)))
        finally:
            server.stop()
    if args.rounds > 1 and not args.direct_only:
        ros, direct = zip(*rates)
        print(f"rounds          : ROS {', '.join(f'{r:.2f}' for r in ros)}; direct "
              f"{', '.join(f'{d:.2f}' for d in direct)} attempts/s per core; ratio "
              f"{', '.join(f'{r / d:.2f}' for r, d in rates)}, median {statistics.median(r / d for r, d in rates):.2f}")  # fmt: skip


def run_round(args, store, server, uri: str, spec, cores: int, renderer: str, k: int, tmp: Path) -> tuple:
    """One ROS run then one direct run of the same attempts, reported; (ROS, direct) attempts/s per core."""
    from bench_grasp import wilson
    from bench_store import server_cpu_meter

    items = list(spec.items())
    db_cpu = server_cpu_meter(server)
    ros = None
    if not args.direct_only:
        stop, peak = threading.Event(), {}
        sampler = threading.Thread(target=backend_rss, args=(stop, peak, args.backends), daemon=True)
        sampler.start()
        machine = psutil.cpu_times()
        db_before = db_cpu()
        result = run_local(store, spec, uri, "bench", args.backends, args.description,
                           tmp / f"runs{k}", progress=False)  # fmt: skip
        stop.set()
        peak["db_cpu"] = db_cpu() - db_before
        after = psutil.cpu_times()
        peak["machine_busy"] = 1 - (after.idle - machine.idle) / (sum(after) - sum(machine))
        docs = list(store.attempts({"campaign": spec.name}))
        ros = (result, docs, peak)
    db_before = db_cpu()
    direct = run_direct(uri, items, renderer, args.backends, k)
    direct_db = (db_cpu() - db_before) / len(items)
    return report(args, cores, renderer, direct, ros, wilson, direct_db)


def report(
    args, cores: int, renderer: str, direct: list[dict], ros, wilson, direct_db: float
) -> tuple[float, float]:
    """Print the figures of one round; (ROS, direct) stored attempts/s per core."""
    n = sum(r["n"] for r in direct)
    total = lambda key: {
        p: sum(r[key].get(p, 0) for r in direct) / n for p in {k for r in direct for k in r[key]}
    }  # noqa: E731
    wall, cpu, steps = total("wall"), total("cpu"), total("steps")
    ros_wall: dict[str, float] = {}
    if ros:
        for d in ros[1]:
            for p, s in d.get("timings", {}).items():
                ros_wall[p] = ros_wall.get(p, 0.0) + s / len(ros[1])
    print(f"{n} attempts per path, strategy {args.strategy}, campaign seed {args.seed}, {args.backends} back ends / "
          f"processes on {cores} cores, renderer {renderer}")  # fmt: skip
    print(f"{'phase':<14}{'direct wall s':>14}{'direct CPU s':>14}{'steps':>8}{'ROS wall s':>12}")
    for p in (*PHASES, "total"):
        row = ros_wall.get(p)
        ros_cell = f"{row:12.3f}" if row is not None else f"{'':12}"
        if p == "total":
            w, c, s = sum(wall.get(q, 0) for q in PHASES), sum(cpu.values()), sum(steps.values())
        else:
            w, c, s = wall.get(p, 0.0), cpu.get(p, 0.0), steps.get(p, 0)
        print(f"{p:<14}{w:14.3f}{c:14.3f}{s:8.0f}{ros_cell}")
    direct_core = sum(r["rate"] for r in direct) / cores
    print(f"direct calls    : {direct_core:.2f} attempts/s per core steady ({1 / max(1e-9, sum(cpu.values())):.2f} "
          f"per CPU-second of attempts)")  # fmt: skip
    k = sum(bool(r["labels"][s][1]) for r in direct for s in r["labels"])
    lo, hi = wilson(k, n)
    print(f"success (direct): {k}/{n} = {k / n:.1%} [95 % CI {lo:.1%}-{hi:.1%}]")
    if not ros:
        return 0.0, direct_core
    result, docs, peak = ros
    rates = per_backend_rates(docs)
    ros_core = sum(rates.values()) / cores
    print(f"ROS 2 path      : {ros_core:.2f} attempts/s per core steady (per back end "
          f"{', '.join(f'{b} {r:.2f}' for b, r in rates.items())}; {result.done / result.seconds:.2f}/s overall "
          f"including start-up)  (target >= 1.5)")  # fmt: skip
    print(f"CPU per attempt : ROS back end {ros_cpu_per_attempt(docs, peak):.3f} s (all its threads; its executor "
          f"thread {ros_cpu_per_attempt(docs, peak, 'executor'):.3f} s), direct {sum(cpu.values()):.3f} s")  # fmt: skip
    print(f"database server : {peak['db_cpu'] / len(docs):.3f} s CPU per stored attempt (the whole run; direct "
          f"{direct_db:.3f} s); machine {peak['machine_busy']:.0%} busy during the ROS run")  # fmt: skip
    print(f"ratio ROS/direct: {ros_core / direct_core:.2f}  (target >= 0.95)")
    print("RSS per back end: " + ", ".join(f"{b} {v / 2**20:.0f} MB" for b, v in sorted(peak.items())
                                           if b.startswith("b")) + " peak  (target <= 400 MB)")  # fmt: skip
    print(
        f"first sample    : {result.first_attempt_s:.1f} s from command to first stored attempt  (target <= 15 s)"
    )
    k = sum(bool(d["success"]) for d in docs)
    lo, hi = wilson(k, len(docs))
    print(f"success (ROS)   : {k}/{len(docs)} = {k / len(docs):.1%} [95 % CI {lo:.1%}-{hi:.1%}]")
    labels = {s: v for r in direct for s, v in r["labels"].items()}
    same = sum(labels.get(d["seed"], (None,))[0] == d["extra"]["outcome"] for d in docs)
    print(f"same outcome on both paths: {same}/{len(docs)} attempts (same seed, same attempt)")
    return ros_core, direct_core


if __name__ == "__main__":
    main()
