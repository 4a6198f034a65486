"""What one service round trip costs the executor of a back end: the unit of the ROS path's overhead per attempt.

    python bench/bench_executor.py [--calls 400] [--repeats 3]

Each variant runs in a process of its own, laid out as a back end's container: four nodes in one executor, a
service whose `async def` callback awaits work on another thread (as the sim server's do on its physics thread),
called from a worker thread (as the grasp sampler calls). Printed per round trip, median of the repeats: CPU of the
executor thread and of the whole process, and wall time, for
- `rclpy`: rclpy's SingleThreadedExecutor as myriad_runtime.container spins it (spin_once, 0.1 s timeout);
- `rclpy-no-params`: the same nodes without their parameter and type-description services (seven per node): what
  they add to every wait, as rclpy rebuilds its wait set from all entities at each wake;
- `lean`: myriad_runtime.executor.LeanExecutor, the container's default, with all those services;
- `events`: rclpy's experimental EventsExecutor, spun by spin_once as the container would;
- `*-20ms`: the awaited work takes 20 ms, as a motion or a capture does. The EventsExecutor polls an awaiting
  coroutine without pause, so its executor thread is busy for the whole wait (its spin() does not resume such a
  coroutine at all, so it is not run here). This is why the container does not use it.
An attempt makes ~10 service calls and 5 action goals (~85-110 executor waits), so the per-call executor CPU
times the calls is the executor's share of the ROS path's overhead against the direct path (issue 10's ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

VARIANTS = ("rclpy", "rclpy-no-params", "lean", "events", "rclpy-20ms", "lean-20ms", "events-20ms")


def run_variant(variant: str, calls: int) -> dict[str, float]:
    """One variant in this process: per round trip, microseconds of CPU (executor thread, process) and wall."""
    import rclpy
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.experimental import EventsExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_srvs.srv import Trigger

    from myriad_runtime.calls import awaitable, call_service
    from myriad_runtime.container import SPIN_S
    from myriad_runtime.executor import LeanExecutor

    rclpy.init()
    kind = variant.split("-")[0]
    executor = {"rclpy": SingleThreadedExecutor, "lean": LeanExecutor, "events": EventsExecutor}[kind]()
    params = variant != "rclpy-no-params"
    overrides = [Parameter("start_type_description_service", value=params)]
    nodes = [Node(f"n{i}", start_parameter_services=params, parameter_overrides=overrides) for i in range(4)]
    for node in nodes:
        executor.add_node(node)
    work_s = 0.02 if variant.endswith("20ms") else 0.0
    physics = ThreadPoolExecutor(1)

    async def serve(_req, res):
        await awaitable(nodes[0], physics.submit(time.sleep, work_s))
        return res

    nodes[0].create_service(Trigger, "work", serve, callback_group=ReentrantCallbackGroup())
    client = nodes[2].create_client(Trigger, "work")
    out: dict[str, float] = {}

    executor_clock = time.pthread_getcpuclockid(threading.get_ident())  # this thread spins the executor

    def worker() -> None:
        call_service(client, Trigger.Request(), 30.0)  # discovery and first use, not measured
        spin, cpu, wall = time.clock_gettime(executor_clock), time.process_time(), time.monotonic()
        for _ in range(calls):
            call_service(client, Trigger.Request(), 30.0)
        out["executor_us"] = (time.clock_gettime(executor_clock) - spin) / calls * 1e6
        out["process_us"] = (time.process_time() - cpu) / calls * 1e6
        out["wall_us"] = (time.monotonic() - wall) / calls * 1e6

    thread = threading.Thread(target=worker)
    thread.start()
    while thread.is_alive():
        executor.spin_once(timeout_sec=SPIN_S)
    executor.shutdown()
    rclpy.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=400, help="round trips per run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per variant, interleaved")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one run, in this process
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.calls)))
        return
    from myriad_runtime.isolation import claim_domain

    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with claim_domain(run="bench_executor") as claim:
        env = dict(os.environ, ROS_DOMAIN_ID=str(claim.domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
        for r in range(args.repeats):
            for v in VARIANTS:
                calls = args.calls if not v.endswith("20ms") else max(20, args.calls // 10)
                print(f"\rrun {r + 1}/{args.repeats}: {v:<16}", end="", file=sys.stderr, flush=True)
                out = subprocess.run(
                    [sys.executable, __file__, "--variant", v, "--calls", str(calls)],
                    env=env, capture_output=True, text=True, timeout=600, check=True,
                )  # fmt: skip
                results[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(file=sys.stderr)
    print(f"per service round trip, median of {args.repeats} runs (us)")
    print(f"{'variant':<17}{'executor CPU':>14}{'process CPU':>13}{'wall':>10}")
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in results.items()}
    for v in VARIANTS:
        m = med[v]
        print(f"{v:<17}{m['executor_us']:>14.0f}{m['process_us']:>13.0f}{m['wall_us']:>10.0f}")
    base, slow = med["rclpy"]["executor_us"], med["rclpy-20ms"]["executor_us"]
    print(f"executor CPU against rclpy's: without parameter/type-description services "
          f"{med['rclpy-no-params']['executor_us'] / base:.2f} x; lean {med['lean']['executor_us'] / base:.2f} x, "
          f"work of 20 ms {med['lean-20ms']['executor_us'] / slow:.2f} x; EventsExecutor "
          f"{med['events']['executor_us'] / base:.2f} x, work of 20 ms {med['events-20ms']['executor_us'] / slow:.1f} x")  # fmt: skip


if __name__ == "__main__":
    main()
