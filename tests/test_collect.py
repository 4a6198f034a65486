"""The main job end to end: `myriad collect` with real back-end processes and a real database server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import collect_command, free_port, wait_for

from myriad_grasping.episode import OUTCOMES
from myriad_storage.codec import decode_png, png_to_depth, png_to_seg
from myriad_storage.store import Store


def collect(uri: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = collect_command(uri, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


def test_five_attempts_stored_with_images(db):
    out = collect(db, "--attempts", "5", "--seed", "7", "--name", "five")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "done: 5/5 attempts" in out.stdout
    store = Store(db, "t")
    docs = store.attempts({"campaign": "five"})
    assert len(docs) == 5 and len({d["attempt_key"] for d in docs}) == 5
    assert store.progress("five")["done"] == 5
    for d in docs:
        assert d["backend"] == "b0" and d["code_version"] and d["seed"] > 0
        assert set(d["images"]) == {"pre_rgb", "pre_depth", "pre_segmentation", "post_rgb"}
        assert decode_png(store.image(d["images"]["pre_rgb"])).shape == (472, 472, 3)
        depth = png_to_depth(store.image(d["images"]["pre_depth"]))
        assert depth.shape == (472, 472) and 0.3 < float(np.median(depth)) < 1.5
        seg = png_to_seg(store.image(d["images"]["pre_segmentation"]))
        assert seg.shape == (472, 472) and len(np.unique(seg)) >= 3
    # Labels agree with what was measured: for executed grasps, success iff an object of the tray rose above the
    # success height; no label without an executed grasp. Seed 7 gives successes and failures (lifted, lifted,
    # missed, lifted, missed); should a physics change make all five alike, choose a seed that mixes them again.
    for d in docs:
        rose = d["lift_height"] > d["params"].get("success_height", 0.10)
        names = {o["name"] for o in d["objects"]}
        assert d["extra"]["outcome"] in OUTCOMES, d
        assert d["success"] == (rose if d["grasp_executed"] else None), d
        assert (d["lifted_object"] in names) if d["success"] else d["lifted_object"] == "", d
        if d["success"]:
            assert d["extra"]["outcome"] == "lifted" and all(
                m.get("ok", True) for m in d["extra"]["moves"].values()
            )  # close: no plan
    assert {True, False} <= {d["success"] for d in docs}


def start(log: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`myriad <args>` in its own session, its output to `log` (readable while it runs)."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "myriad_frontend.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=env,
        )


@pytest.mark.timeout(600)
def test_same_seed_same_attempts_whichever_back_ends_run_them(db, tmp_path):
    """A campaign file run by one back end and by two (with the dashboard on): by work item, the same seeds,
    parameters, objects and poses, grasps, labels and image bytes; another seed differs."""
    tag = uuid.uuid4().hex[:6]  # fresh names: log/runs/<name> (logs, spools) outlives a test session
    name_a, name_b, name_c = f"seed_a-{tag}", f"seed_b-{tag}", f"seed_c-{tag}"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: sweep\nseed: 11\nattempts: 4\nsweep:\n  object_count: [3, 4]\n")
    out = collect(db, "--campaign", str(sweep), "--name", name_a, "--backends", "1", "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    log, port = tmp_path / "b.log", free_port()
    proc = start(log, "collect", "--mongo-uri", db, "--database", "t", "--campaign", str(sweep), "--name",
                 name_b, "--backends", "2", "--quiet", "--dashboard", "--dashboard-port", str(port))  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/overview"
        wait_for(lambda: f"dashboard: http://127.0.0.1:{port}/" in log.read_text(), 120, "the dashboard")

        def overview_has_b():
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
            shown = {b["backend"] for b in body["backends"] if b["campaign"] == name_b}
            return any(c["name"] == name_b for c in body["campaigns"]) and shown == {"b0", "b1"}

        wait_for(overview_has_b, 120, "the dashboard to show the campaign and its back ends")
        assert proc.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    store = Store(db, "t")

    def by_item(name):
        docs = sorted(store.attempts({"campaign": name}), key=lambda d: d["item_index"])
        return [
            (d["item_index"], d["seed"], d["params"], d["grasp"], d["success"], d["extra"]["outcome"],
             d["lift_height"], [(o["source"], o["position"], o["orientation"]) for o in d["objects"]],
             [store.image(d["images"][k]) for k in ("pre_rgb", "pre_depth", "pre_segmentation", "post_rgb")])
            for d in docs
        ]  # fmt: skip

    a, b = by_item(name_a), by_item(name_b)
    assert len(a) == 4 and a == b
    assert {d["backend"] for d in store.attempts({"campaign": name_b})} == {"b0", "b1"}
    assert sorted(p["object_count"] for _, _, p, *_ in a) == [3, 3, 4, 4]
    out = collect(
        db, "--campaign", str(sweep), "--name", name_c, "--seed", "12", "--attempts", "2", "--quiet"
    )
    assert out.returncode == 0
    assert [x[1:] for x in by_item(name_c)] != [x[1:] for x in a[:2]]


@pytest.mark.timeout(600)
def test_interrupted_campaign_resumes_by_name(db, tmp_path):
    """Interrupted after its first attempt, the same command with the same --name completes the campaign
    without redoing what was stored; `myriad status` (database from $MYRIAD_MONGO_URI) reports it."""
    env = {**os.environ, "MYRIAD_MONGO_URI": db}
    name = f"resumed-{uuid.uuid4().hex[:6]}"  # fresh: log/runs/<name> (logs, spools) outlives a test session
    args = ("collect", "--database", "t", "--attempts", "5", "--seed", "4", "--name", name, "--quiet")
    proc = start(tmp_path / "first.log", *args, env=env)
    store = Store(db, "t")
    try:
        wait_for(lambda: bool(store.attempts({"campaign": name})), 180, "the first attempt")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    before = {d["attempt_key"]: d["created_at"] for d in store.attempts({"campaign": name})}
    assert 1 <= len(before) < 5, (tmp_path / "first.log").read_text()[-2000:]
    proc = start(tmp_path / "second.log", *args, env=env)
    assert proc.wait(timeout=240) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert "done: 5/5 attempts" in (tmp_path / "second.log").read_text()
    docs = store.attempts({"campaign": name})
    assert (
        sorted(d["item_index"] for d in docs) == list(range(5)) and len({d["attempt_key"] for d in docs}) == 5
    )
    assert {k: d["created_at"] for d in docs if (k := d["attempt_key"]) in before} == before
    # Not redone (a redone attempt would be stored under the same key, unseen above): the items stored before
    # the interruption were claimed once, by the first run.
    first = {d["item_id"] for d in docs if d["attempt_key"] in before}
    claims = {i["item_id"]: i["claims"] for i in store.work_items(name) if i["item_id"] in first}
    assert claims == dict.fromkeys(first, 1), claims
    successes = sum(d["success"] is True for d in docs)
    status = subprocess.run(
        [sys.executable, "-m", "myriad_frontend.cli", "status", "--database", "t", name],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert f"{name}: 5/5 done, 0 leased, 0 pending, {successes} successes" in status.stdout
    assert {line.split(":")[0].strip() for line in status.stdout.splitlines()[1:]} <= {
        "b0",
        "outcomes",
        "strategies",
        "time per attempt",
    }
    executed = sum(d["grasp_executed"] is not False for d in docs)
    assert f"  strategies: object {successes}/{executed} (" in status.stdout, status.stdout
    # the back end's last heartbeat, written once it had shut down
    assert re.search(r"^  b0: stopped, \d+ attempts, item -, updated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$",
                     status.stdout, re.M), status.stdout  # fmt: skip
    # where the time goes: the sampler's phases, then the logger's encoding of the images
    for d in docs:
        assert list(d["timings"])[:2] == ["reset", "capture_pre"] and list(d["timings"])[-2:] == [
            "total",
            "encode",
        ]
        assert all(v > 0 for v in d["timings"].values()), d["timings"]
    assert "  time per attempt: reset " in status.stdout and "encode" in status.stdout, status.stdout


def test_unreachable_database_is_a_clear_error():
    port = free_port()
    out = collect(f"mongodb://user:secret@127.0.0.1:{port}/", "--attempts", "1", timeout=60)
    assert out.returncode == 3  # storage unavailable
    assert f"MongoDB not reachable at mongodb://user:***@127.0.0.1:{port}/" in out.stderr
    assert "secret" not in out.stderr


def test_bad_parameters_are_refused_before_anything_runs(db):
    out = collect(db, "--attempts", "2", "--set", "strategy=sideways")
    assert (
        out.returncode == 2
        and "strategy: expected one of ('uniform', 'object', 'learned'), got 'sideways'" in out.stderr
    )
