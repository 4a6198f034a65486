"""Closed-loop steps per second with each executor: the CLE profile (config/backend_cle.yaml) as the front end runs it.

    python bench/bench_cle.py [--duration 20] [--repeats 2]

The sim server and the CLE node (example brain, 25 ms steps) run in their two processes from the one start path
(plan_backend), with `executor: lean` and `executor: rclpy` alternately. Every CLE step is a `step_simulation` round
trip between the processes, so this is where the executor's cost per service call shows most. Printed per
executor, median of the repeats: CLE steps per second (wall, between 0.5 s of sim time and the end) and CPU per
step of each process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

from myriad_frontend.description import load_description
from myriad_frontend.plan import backend_env, plan_backend
from myriad_frontend.processes import BackendProcesses
from myriad_runtime import EXECUTORS
from myriad_runtime.isolation import claim_domain

WS = Path(os.environ.get("MYRIAD_WS", Path(__file__).resolve().parents[1]))
STEP_S = 0.025


def run_once(executor: str, duration: float, domain: int, tmp: Path) -> dict[str, float]:
    """One closed-loop run of `duration` s of sim time; steps/s and CPU ms per step of each process."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    data = yaml.safe_load((WS / "config" / "backend_cle.yaml").read_text())
    data["executor"] = executor
    data["nodes"]["cle"]["parameters"].update(duration=duration, timestep=STEP_S)
    path = tmp / f"cle_{executor}.yaml"
    path.write_text(yaml.safe_dump(data))
    env = backend_env(WS, domain)
    plans = plan_backend(
        load_description(path), 0, {"ws": WS, "database": "", "campaign": ""}, tmp / executor, env
    )
    backend = BackendProcesses("cle0", plans)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_cle", namespace="/myriad/cle0", context=context)
    status: dict = {}
    node.create_subscription(String, "cle/status", lambda m: status.update(json.loads(m.data)), 10)
    probe = SingleThreadedExecutor(context=context)
    probe.add_node(node)
    backend.start()
    try:
        procs = [psutil.Process(pid) for pid in backend.pids()]
        start = end = None
        deadline = time.monotonic() + 120 + 10 * duration
        while end is None:
            probe.spin_once(timeout_sec=0.05)
            assert time.monotonic() < deadline and not backend.dead(), (
                f"no progress: {status} {backend.dead()}"
            )
            sim = status.get("time", 0.0)
            now = (time.monotonic(), sim, [sum(p.cpu_times()[:2]) for p in procs])
            if start is None and sim >= 0.5:
                start = now
            elif start is not None and sim >= duration - 0.5:
                end = now
        steps = (end[1] - start[1]) / STEP_S
        cpu = [(b - a) / steps * 1e3 for a, b in zip(start[2], end[2], strict=True)]
        return {"steps_per_s": steps / (end[0] - start[0]), "sim_ms": cpu[0], "cle_ms": cpu[1]}
    finally:
        backend.stop()
        probe.shutdown()
        node.destroy_node()
        context.try_shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20.0, help="sim seconds per run")
    ap.add_argument("--repeats", type=int, default=2, help="runs per executor, alternated")
    args = ap.parse_args()
    results: dict[str, list[dict]] = {e: [] for e in EXECUTORS}
    with claim_domain(run="bench_cle") as claim, tempfile.TemporaryDirectory() as tmp:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        for r in range(args.repeats):
            for e in EXECUTORS:
                print(f"\rrun {r + 1}/{args.repeats}: {e:<6}", end="", file=sys.stderr, flush=True)
                results[e].append(run_once(e, args.duration, claim.domain_id, Path(tmp)))
    print(file=sys.stderr)
    print(
        f"closed loop, {STEP_S * 1e3:.0f} ms steps, {args.duration:g} s of sim time, median of {args.repeats} runs"
    )
    print(f"{'executor':<10}{'steps/s':>9}{'sim server CPU/step':>21}{'CLE CPU/step':>14}")
    med = {e: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for e, rs in results.items()}
    for e in EXECUTORS:
        m = med[e]
        print(f"{e:<10}{m['steps_per_s']:>9.0f}{m['sim_ms']:>18.2f} ms{m['cle_ms']:>11.2f} ms")
    print(f"lean / rclpy: {med['lean']['steps_per_s'] / med['rclpy']['steps_per_s']:.2f} x steps per second")


if __name__ == "__main__":
    main()
