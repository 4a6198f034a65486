"""Trajectories recorded by `myriad collect` (real back-end nodes, a real database server, real physics): sampled
at the rate, the same as the in-process back end records for the same seed, exported as LeRobot frames; and the
stored camera pose puts the Parquet export's grasp pixel where the camera model projects the grasp."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import collect_command

from myriad.local import LocalBackend, LocalGraspBackend
from myriad_grasping.episode import run_attempt
from myriad_grasping.sampling import GraspParams
from myriad_sim.camera import Camera
from myriad_sim.spec import load_world
from myriad_storage.codec import decode_png
from myriad_storage.export import export
from myriad_storage.records import FILM, trajectory_from_record
from myriad_storage.store import Store

WS = Path(__file__).resolve().parents[1]
WORLD = load_world(WS / "worlds" / "tray.yaml")
pytestmark = pytest.mark.timeout(900)  # a collection of real back ends on a busy 2-core machine


@pytest.fixture(scope="module")
def stored(module_db, tmp_path_factory):
    """Two attempts collected with camera frames (5 Hz, 64 px) besides the default 10 Hz trajectory."""
    text = (WS / "config" / "backend.yaml").read_text()
    text = text.replace("trajectory_camera_rate: 0.0", "trajectory_camera_rate: 5.0")
    text = text.replace("trajectory_camera_size: 128", "trajectory_camera_size: 64")
    description = tmp_path_factory.mktemp("desc") / "backend.yaml"
    description.write_text(text)
    out = subprocess.run(
        collect_command(module_db, "--attempts", "2", "--seed", "5", "--name", "traj", "--quiet",
                        "--description", str(description)),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    store = Store(module_db, "t")
    docs = sorted(store.attempts({"campaign": "traj"}), key=lambda d: d["item_index"])
    assert len(docs) == 2
    recs = [trajectory_from_record(d["trajectory"], store.image(d["images"][FILM])) for d in docs]
    yield store, docs, recs
    store.close()


def test_stored_trajectories_are_sampled_at_the_rate(stored):
    _, docs, recs = stored
    for d, rec in zip(docs, recs):
        n = len(rec)
        assert rec.seed == d["seed"] and rec.rate == 10.0 and d["trajectory"]["shape"] == [n, 31]
        assert np.array_equal(rec.times, (np.arange(n) * 24 / 240).astype(np.float32))
        assert rec.times[-1] <= d["sim_time"] < rec.times[-1] + 0.1  # up to the end of the attempt
        assert rec.frames.shape == (len(range(0, n, 2)), 64, 64, 3)
        assert rec.column("gripper.command")[0, 0] == 1.0  # the gripper starts open


def test_ros_and_in_process_back_ends_record_the_same_trajectory(stored):
    _, docs, recs = stored
    local = LocalBackend(WORLD, "tiny", 10.0, 5.0, 64)
    try:
        for d, rec in zip(docs, recs):
            params = GraspParams.from_dict(d["params"])
            a = run_attempt(
                LocalGraspBackend(local), params, d["seed"], WORLD.objects.region_x, WORLD.objects.region_y
            )
            assert a.outcome == d["extra"]["outcome"]
            assert a.trajectory.columns == rec.columns
            assert np.array_equal(a.trajectory.values, rec.values), d["seed"]
            assert np.array_equal(a.trajectory.frames, rec.frames)
    finally:
        local.close()


def test_parquet_grasp_pixel_is_the_camera_projection_of_the_grasp(stored, tmp_path):
    store, docs, _ = stored
    export(store, "traj", "parquet", tmp_path / "pq", progress=False)
    rows = pd.read_parquet(tmp_path / "pq" / "data").to_dict("records")
    camera = Camera(WORLD.camera)
    assert len(rows) == len(docs) > 0
    for row, d in zip(rows, docs):
        g = d["grasp"]
        assert list(row["camera_position"]) == list(WORLD.camera.position)
        u, v = row["grasp_pixel"]
        expected = np.subtract(camera.project((g["x"], g["y"], g["z"])), 0.5)  # pixel centres at integers
        assert (u, v) == pytest.approx(tuple(expected), abs=1e-3)  # the GL matrices are float32
        grasp = np.array([g["x"], g["y"], g["z"]])
        along = (camera.rotation().T @ (grasp - WORLD.camera.position))[2]  # the grasp's optical depth
        back = camera.deproject(np.array([u]), np.array([v]), np.array([along]))[:, 0]
        assert back == pytest.approx(grasp, abs=1e-5)  # that pixel's ray, at the grasp's depth, is the grasp
        assert 0 <= u < row["camera_width"] and 0 <= v < row["camera_height"]


def test_lerobot_export_has_a_frame_per_trajectory_sample(stored, tmp_path):
    store, docs, recs = stored
    r = export(store, "traj", "lerobot", tmp_path / "lr", progress=False)
    assert r.note == ""
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    assert info["fps"] == 10 and info["total_frames"] == sum(len(rec) for rec in recs) == r.frames
    assert info["features"]["observation.state"]["shape"] == [22]
    assert info["features"]["observation.state"]["names"][:2] == ["position.J0", "position.J1"]
    assert info["features"]["action"]["shape"] == [8]
    assert info["features"]["observation.images.rgb"]["shape"] == [64, 64, 3]
    frames = pd.read_parquet(tmp_path / "lr" / "data")
    for e, (d, rec) in enumerate(zip(docs, recs)):
        ep = frames[frames.episode_index == e]
        assert len(ep) == len(rec) and list(ep.frame_index) == list(range(len(rec)))
        assert np.allclose(ep.timestamp, np.arange(len(rec)) / 10)
        state = np.stack(ep["observation.state"])
        assert np.array_equal(state[:, :7], rec.column("position."))
        assert np.array_equal(state[:, 21], rec.column("gripper.opening")[:, 0])
        action = np.stack(ep["action"])
        assert np.array_equal(action[:, :7], rec.column("action.")) and np.array_equal(
            action[:, 7], rec.column("gripper.command")[:, 0]
        )
        assert (
            list(ep["next.reward"])[-1] == float(bool(d["success"]))
            and list(ep["next.done"]).count(True) == 1
        )
        image = decode_png(ep["observation.images.rgb"].iloc[3]["bytes"])
        assert np.array_equal(image, rec.frames[1])  # sample 3 (0.3 s) shows the frame of 0.2 s
