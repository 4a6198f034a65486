"""The learning loop measured: collect random grasps into a campaign, train, compare strategies on held-out seeds.

    python bench/bench_learn.py collect NAME --attempts 700 --strategy uniform --seed 11 [--jobs 2] [--set K=V]

`collect` runs the attempts by direct in-process calls (myriad_grasping.episode.run_attempt over the Experiment
API's in-process back end, as bench/bench_grasp.py) and stores each one as a back end does (the same record
builder, PNG images in GridFS) in a campaign of the database (--mongo-uri, else the workspace's local server), so
`myriad train NAME` reads it like any collected campaign. A run resumes: attempts already stored are skipped.
Comparing strategies on held-out seeds is bench/bench_grasp.py's job (`--strategies learned object uniform`).
Measured (2026-12-02, a shared 2-core machine): 380 `uniform` attempts (campaign seed 11, 37 % lifted) and 158
`object` with position_noise 0.03, yaw_noise 0.5 (seed 12, ~52 % lifted) in ~50 min; `myriad train learn-uniform
learn-object`: model v2, 538 labelled attempts (420 train / 118 validation by seed), 20 epochs in 14 s (reading
the images ~30 s): validation accuracy 0.780 (majority class 0.568), ROC AUC 0.849, Brier 0.158, ECE 0.061.
Again after the damped settle and full joint speeds (2026-12-02, a quiet machine, --jobs 2): the same 380 + 158
attempts in 151 + 69 s (41.6 % and 53.2 % lifted); the model: validation accuracy 0.752 (majority class 0.521),
ROC AUC 0.801, Brier 0.182, ECE 0.074.
Again after the 0.20 m lift and the gripper's stall by position (2026-12-02, quiet machine, --jobs 2): 154 + 68 s
(42.1 % and 55.1 % lifted); model v2: validation accuracy 0.718 (majority class 0.504), ROC AUC 0.790, Brier 0.187,
ECE 0.101.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

from myriad.local import LocalBackend, LocalGraspBackend
from myriad.recording import GraspResult, grasp_record
from myriad.types import CameraImage, ObjectInfo
from myriad_frontend.campaign import make_spec
from myriad_grasping.episode import run_attempt
from myriad_grasping.sampling import GraspParams
from myriad_runtime import code_version
from myriad_sim.spec import load_world
from myriad_storage.server import resolve_uri
from myriad_storage.store import Store

WS = Path(os.environ.get("MYRIAD_WS", Path(__file__).resolve().parents[1]))


def store_items(uri: str, campaign: str, items: list[tuple[int, dict]], renderer: str, tag: str) -> int:
    """Run and store the (index, item) pairs in this process; the number stored."""
    local = LocalBackend(load_world(WS / "worlds" / "tray.yaml"), renderer)
    backend, region, store = LocalGraspBackend(local), local.spec.objects, Store(uri)
    version = code_version()
    for index, item in items:
        params = GraspParams.from_dict(item)
        a = run_attempt(backend, params, item["seed"], region.region_x, region.region_y)
        bodies = {s.name: s for s in local.world.object_states()}
        camera = local.world.camera
        pre, post = (CameraImage(f.rgb, f.depth, f.segmentation, camera.intrinsics, camera)
                     for f in (a.pre_images, a.post_images))  # fmt: skip
        objects = [ObjectInfo(n, s, bodies[n].body, p, tuple(bodies[n].orientation)) for n, s, p in a.objects]
        g = a.grasp
        result = GraspResult(g.x, g.y, g.z, g.yaw, a.success, a.lifted_object, a.lift_height, a.outcome, objects,
                             params.to_dict(), pre, post, timings=a.timings, moves=a.moves,
                             grasp_executed=a.grasp_executed)  # fmt: skip
        item_id = f"{campaign}/{index:06d}"
        record, pngs = grasp_record(result, attempt_key=f"{item_id}#0", campaign=campaign, item_id=item_id,
                                    item_index=index, attempt_index=0, backend=tag, seed=item["seed"],
                                    code_version=version)  # fmt: skip
        record["extra"]["source"] = "bench"
        store.store_attempt(record, pngs)
    local.close()
    store.close()
    return len(items)


def collect(args: argparse.Namespace) -> None:
    params = {"strategy": args.strategy, "object_count": args.object_count}
    for kv in args.set:
        key, _, value = kv.partition("=")
        params[key] = float(value) if key != "strategy" else value
    spec = make_spec(args.name, args.seed, args.attempts, params)
    uri, _server = resolve_uri(args.mongo_uri, WS / "data")
    store = Store(uri)
    store.create_campaign(spec.name, spec.items, template=params, seed=spec.seed)
    done = {d["item_index"] for d in store.db.attempts.find({"campaign": spec.name}, {"item_index": True})}
    todo = [(i, item) for i, item in enumerate(spec.items()) if i not in done]
    print(f"{spec.name}: {len(done)} stored, {len(todo)} to run with {args.jobs} processes", flush=True)
    t0 = time.perf_counter()
    chunks = [(uri, spec.name, todo[k :: args.jobs], args.renderer, f"bench{k}") for k in range(args.jobs)]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        n = sum(pool.starmap(store_items, chunks))
    p = store.progress(spec.name, outcomes=True)
    print(f"{spec.name}: ran {n} in {time.perf_counter() - t0:.0f} s; {p}", flush=True)
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="random grasps into a campaign, in-process")
    c.add_argument("name")
    c.add_argument("--attempts", type=int, default=700)
    c.add_argument("--strategy", default="uniform")
    c.add_argument("--seed", type=int, default=11, help="campaign seed (bench_grasp's held-out default is 1)")
    c.add_argument("--object-count", type=int, default=5)
    c.add_argument("--set", action="append", default=[], help="KEY=VALUE grasp parameter (numbers)")
    c.add_argument("--jobs", type=int, default=2)
    c.add_argument("--renderer", default="tiny")
    c.add_argument("--mongo-uri", default=None)
    args = ap.parse_args()
    if args.command == "collect":
        collect(args)


if __name__ == "__main__":
    sys.exit(main())
