"""What `myriad collect` (real back-end nodes, a real database server) stores about each grasp: its height by the
one grasp-height rule from the stored depth image, the same grasp as the Experiment API's, and no label without
an executed grasp."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import collect_command

from myriad import Experiment
from myriad_grasping.sampling import GraspParams, grasp_height
from myriad_sim.camera import Camera
from myriad_sim.spec import load_world
from myriad_storage.codec import png_to_depth
from myriad_storage.store import Store

WS = Path(__file__).resolve().parents[1]
WORLD = WS / "worlds" / "tray.yaml"
MM = 0.0015  # the stored depth is in whole millimetres
pytestmark = pytest.mark.timeout(1200)  # two collections of real back ends on a busy 2-core machine


def collect(uri: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(collect_command(uri, *args), capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


@pytest.fixture(scope="module")
def stored(db):
    out = collect(db, "--attempts", "3", "--seed", "21", "--name", "rule", "--set", "object_count=4")
    assert out.returncode == 0, out.stderr[-3000:]
    store = Store(db, "t")
    docs = sorted(store.attempts({"campaign": "rule"}), key=lambda d: d["item_index"])
    assert len(docs) == 3
    return store, docs


def test_stored_grasp_height_follows_the_stored_depth_image(stored):
    store, docs = stored
    camera = Camera(load_world(WORLD).camera)
    for d in docs:
        p, g = GraspParams.from_dict(d["params"]), d["grasp"]
        surface = camera.surface_height(png_to_depth(store.image(d["images"]["pre_depth"])), g["x"], g["y"])
        assert g["z"] == pytest.approx(grasp_height(p, surface), abs=MM), (d["seed"], g, surface)
        assert g["z"] >= p.min_grasp_z  # never below the floor
        assert g["z"] <= surface - p.grasp_depth + MM or g["z"] == p.min_grasp_z  # below the seen surface
        assert d["extra"]["target"] and d["grasp_executed"] in (True, False)


def test_sampler_and_experiment_api_make_the_same_grasp_from_the_same_seed(stored):
    _, docs = stored
    for d in docs:
        with Experiment(world=WORLD, renderer="tiny", seed=d["seed"], object_count=4) as exp:
            objects = exp.reset()
            seen = [v for o in objects for v in o.position]
            assert seen == pytest.approx([v for o in d["objects"] for v in o["position"]], abs=1e-9)
            grasp = exp.sample_grasp(**d["params"])
        assert (grasp.x, grasp.y, grasp.z, grasp.yaw) == pytest.approx(
            (d["grasp"]["x"], d["grasp"]["y"], d["grasp"]["z"], d["grasp"]["yaw"]), abs=1e-6
        )


def test_refused_attempts_are_stored_without_a_label(db):
    # The approach pose 1 m above the tray is out of the arm's reach: no grasp can start.
    out = collect(db, "--attempts", "2", "--name", "refused", "--set", "approach_height=1.0")
    assert out.returncode == 0, out.stderr[-3000:]
    docs = Store(db, "t").attempts({"campaign": "refused"})
    assert len(docs) == 2
    for d in docs:
        assert d["grasp_executed"] is False and d["success"] is None, d
        assert d["extra"]["outcome"] == "refused_before_descent"
    status = subprocess.run(
        [sys.executable, "-m", "myriad_frontend.cli", "status", "refused", "--mongo-uri", db, "--database", "t"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert "0 successes of 0 executed grasps" in status.stdout
    assert "outcomes: refused_before_descent 2" in status.stdout


def test_dashboard_counts_outcomes_and_filters_unlabelled_attempts(
    mongo_uri, dashboard_attempt, dashboard_serve
):
    import json
    import time
    import urllib.request
    import uuid

    database = f"test_outcomes_{uuid.uuid4().hex[:10]}"
    store = Store(mongo_uri, database)
    store.ensure_indexes()
    store.create_campaign("tax", [{"seed": i} for i in range(3)])
    for i, (outcome, executed, success) in enumerate(
        [("lifted", True, True), ("missed", True, False), ("refused_before_descent", False, None)]
    ):
        record, images = dashboard_attempt("tax", i, success=bool(success))
        record.update(extra={"outcome": outcome}, grasp_executed=executed, success=success)
        store.store_attempt(record, images)
    url = dashboard_serve(database).url

    def get(path: str) -> dict:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=20) as r:
            return json.loads(r.read())

    deadline, items = time.monotonic() + 60, {}
    while time.monotonic() < deadline and "outcomes" not in items:
        items = next((c["items"] or {} for c in get("/api/overview")["campaigns"] if c["name"] == "tax"), {})
        time.sleep(0.2)
    assert items["outcomes"] == {"lifted": 1, "missed": 1, "refused_before_descent": 1}
    assert items["successes"] == 1 and items["executed"] == 2
    labels = {
        label: [
            (s["outcome"], s["success"]) for s in get(f"/api/samples?campaign=tax&label={label}")["items"]
        ]
        for label in ("success", "failure", "none")
    }
    assert labels == {"success": [("lifted", True)], "failure": [("missed", False)],
                      "none": [("refused_before_descent", None)]}  # fmt: skip
    store.client.drop_database(database)
    store.close()
