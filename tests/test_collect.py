"""The main job end to end: `myriad collect` with real back-end processes and a real database server."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import collect_command, free_port

from myriad_storage.codec import decode_png, png_to_depth, png_to_seg
from myriad_storage.store import Store


def collect(uri: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = collect_command(uri, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from myriad_storage.server import LocalServer

    server = LocalServer(tmp_path_factory.mktemp("db"), port=free_port())
    uri = server.ensure_running()
    yield uri
    server.stop()


def test_five_attempts_stored_with_images(db):
    out = collect(db, "--attempts", "5", "--seed", "3", "--name", "five")
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
    # Labels agree with what was measured: success iff an object of the tray rose above the success height,
    # and only after the whole grasp ran; seed 3 gives at least one success and one failure.
    outcomes = {"lifted", "reach_failed", "descend_failed", "lift_failed"}
    for d in docs:
        rose = d["lift_height"] > d["params"].get("success_height", 0.10)
        names = {o["name"] for o in d["objects"]}
        assert d["extra"]["outcome"] in outcomes and d["success"] == rose, d
        assert (d["lifted_object"] in names) if d["success"] else d["lifted_object"] == "", d
        if d["success"]:
            assert d["extra"]["outcome"] == "lifted" and all(m["ok"] for m in d["extra"]["moves"].values())
    assert {d["success"] for d in docs} == {True, False}


def test_same_seed_same_grasps_and_labels(db):
    for name in ("seed_a", "seed_b"):
        out = collect(db, "--attempts", "4", "--seed", "11", "--name", name, "--set", "object_count=4")
        assert out.returncode == 0, out.stderr[-3000:]
    store = Store(db, "t")

    def summary(name):
        docs = sorted(store.attempts({"campaign": name}), key=lambda d: d["item_index"])
        return [
            (d["seed"], d["grasp"], d["success"], d["extra"]["outcome"], [o["source"] for o in d["objects"]])
            for d in docs
        ]

    a, b = summary("seed_a"), summary("seed_b")
    assert len(a) == 4 and a == b
    out = collect(db, "--attempts", "4", "--seed", "12", "--name", "seed_c", "--set", "object_count=4")
    assert out.returncode == 0
    assert summary("seed_c") != a


def test_unreachable_database_is_a_clear_error():
    port = free_port()
    out = collect(f"mongodb://user:secret@127.0.0.1:{port}/", "--attempts", "1", timeout=60)
    assert out.returncode == 2
    assert f"MongoDB not reachable at mongodb://user:***@127.0.0.1:{port}/" in out.stderr
    assert "secret" not in out.stderr


def test_bad_parameters_are_refused_before_anything_runs(db):
    out = collect(db, "--attempts", "2", "--set", "strategy=sideways")
    assert (
        out.returncode == 2
        and "strategy: expected one of ('uniform', 'object'), got 'sideways'" in out.stderr
    )
