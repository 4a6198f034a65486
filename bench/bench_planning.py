"""Planning benchmark: random reaches among the objects of cluttered trays, per planner, against straight motion.

    PYTHONPATH=src/myriad_planning:src/myriad_sim python bench/bench_planning.py [--reaches 100] [--objects 8]

Reaches are chained: each starts where the previous one ended (home after a new tray is drawn) and goes to a
random top-down pose low over the tray whose IK solution is collision-free, so every goal is valid and the same
for every planner. The baseline moves in a straight joint-space line and succeeds when that line is
collision-free; the planners run OMPL even when the line is free (try_direct off). Times are wall seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pybullet as pb

from myriad_planning.config import PLANNERS, load_config
from myriad_planning.planner import SUCCESS, Planner
from myriad_planning.scene import ObjectState, Scene
from myriad_sim.spec import load_world
from myriad_sim.world import World

ROOT = Path(__file__).resolve().parents[1]


def valid_goal(planner: Planner, rng: np.random.Generator, start: np.ndarray, region) -> np.ndarray:
    """IK solution of a random low top-down pose over the tray that is collision-free."""
    while True:
        position = (rng.uniform(*region[0]), rng.uniform(*region[1]), rng.uniform(0.06, 0.25))
        orientation = pb.getQuaternionFromEuler([0.0, math.pi, rng.uniform(-math.pi / 2, math.pi / 2)])
        q = planner.scene.kinematics.ik(position, orientation, seed=start, rng=rng)
        if q is not None and planner.scene.is_valid(q):
            return q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reaches", type=int, default=100)
    parser.add_argument("--objects", type=int, default=8, help="objects per tray")
    parser.add_argument("--per-tray", type=int, default=10, help="reaches per tray before a new one is drawn")
    parser.add_argument("--planners", nargs="+", default=list(PLANNERS))
    opts = parser.parse_args()
    spec = load_world(ROOT / "worlds" / "tray.yaml")
    config = dataclasses.replace(load_config(ROOT / "config" / "planning.yaml"), try_direct=False)
    sim, scene = World(spec, renderer="tiny"), Scene(spec, config)
    planner = Planner(scene, config)
    rng = np.random.default_rng(0)
    region = (spec.objects.region_x, spec.objects.region_y)
    names = ["straight"] + opts.planners
    stats = {n: {"time": [], "length": [], "codes": []} for n in names}
    home = np.clip(spec.robot.home, scene.robot.lower, scene.robot.upper)
    start = home
    for i in range(opts.reaches):
        if i % opts.per_tray == 0:
            states = sim.reset(seed=i, object_count=opts.objects)
            scene.sync(ObjectState(s.name, s.source, s.position, s.orientation) for s in states)
            start = home
        goal = valid_goal(planner, rng, start, region)
        t0 = time.monotonic()
        ok = planner.free_line(start, goal)
        stats["straight"]["time"].append(time.monotonic() - t0)
        stats["straight"]["codes"].append(SUCCESS if ok else -1)
        if ok:
            stats["straight"]["length"].append(float(np.linalg.norm(goal - start)))
        for name in opts.planners:
            r = planner.plan_joints(start, goal, planner=name, seed=i)
            stats[name]["time"].append(r.planning_time)
            stats[name]["codes"].append(r.code)
            if r.success:
                stats[name]["length"].append(r.path_length)
        start = goal
        print(f"reach {i + 1}/{opts.reaches}", end="\r", flush=True)
    print(
        f"{opts.reaches} chained reaches, {opts.objects} objects per tray, {opts.per_tray} reaches per tray"
    )
    print(f"{'planner':<11} {'success':>8} {'median s':>9} {'p95 s':>8} {'path rad':>9}  failures by code")
    for name in names:
        s = stats[name]
        t, codes = np.array(s["time"]), s["codes"]
        fails = {c: codes.count(c) for c in sorted(set(codes)) if c != SUCCESS}
        length = f"{np.median(s['length']):9.2f}" if s["length"] else f"{'-':>9}"
        rate = 100 * codes.count(SUCCESS) / len(codes)
        print(
            f"{name:<11} {rate:7.0f}% {np.median(t):9.3f} {np.percentile(t, 95):8.3f} {length}  {fails or ''}"
        )


if __name__ == "__main__":
    main()
