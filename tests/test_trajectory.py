"""Trajectory recording (myriad_sim.recording) on real physics in this process: samples at the rate, equal to the
robot's state at those times, no effect on the attempt, and lossless through the message and the stored record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from myriad.local import LocalBackend, LocalGraspBackend
from myriad_grasping.episode import run_attempt
from myriad_grasping.sampling import GraspParams
from myriad_sim import recording
from myriad_sim.spec import load_world

WORLD = load_world(Path(__file__).resolve().parents[1] / "worlds" / "tray.yaml")
SEED = 3


def attempt(rate: float = 0.0, camera_rate: float = 0.0, spy: list | None = None):
    """One grasp attempt in this process; `spy` receives (steps, arm joint positions) after every step call."""
    local = LocalBackend(WORLD, "tiny", rate, camera_rate, 64)
    world, step = local.world, local.world.step

    def spied(n: int = 1) -> None:
        step(n)
        spy.append((world.steps, world.robot.joint_positions()))

    if spy is not None:
        world.step = spied
    try:
        a = run_attempt(
            LocalGraspBackend(local), GraspParams(), SEED, WORLD.objects.region_x, WORLD.objects.region_y
        )
        return a, world.sim_time, world.robot.joint_positions(), local.world.object_states()
    finally:
        local.close()


@pytest.fixture(scope="module")
def recorded():
    spy: list = []
    return (*attempt(20.0, 5.0, spy), spy)


def test_rates_must_divide_the_physics_rate():
    assert (
        recording.period_steps(1 / 240, 10.0, "r") == 24 and recording.period_steps(1 / 240, 0.5, "r") == 480
    )
    for bad, why in ((7.0, "that divides the physics rate 240 Hz"), (0.0, r"in \(0, 240\]"), (-1.0, "in"),
                     (float("inf"), "in"), (480.0, "in"), ("10", "in")):  # fmt: skip
        with pytest.raises(ValueError, match=f"parameter trajectory_rate: expected a rate {why}"):
            recording.Recorder(WORLD, bad, prefix="parameter ")
    with pytest.raises(
        ValueError, match="trajectory_camera_rate: expected a rate dividing trajectory_rate 10"
    ):
        recording.Recorder(WORLD, 10.0, camera_rate=4.0)
    with pytest.raises(ValueError, match="trajectory_camera_size: expected 8..1024 pixels"):
        recording.Recorder(WORLD, 10.0, camera_rate=5.0, camera_size=4)


def test_rows_go_on_after_the_camera_frame_cap(monkeypatch):
    """Past MAX_FRAMES the recorder keeps sampling the robot (it used to stop both), without new frames."""
    monkeypatch.setattr(recording, "MAX_FRAMES", 3)
    local = LocalBackend(WORLD, "tiny", 20.0, 5.0, 16)
    try:
        local.world.reset(1, 0)
        local.world.step(240)
        rec, steps = local.world.recorder.recording(), local.world.steps
    finally:
        local.close()
    assert len(rec) == steps // 12 + 1 > 12 and rec.frames.shape == (3, 16, 16, 3)
    assert rec.frame_of_row()[-1] == 2


def test_samples_are_the_robot_state_at_multiples_of_the_period(recorded):
    a, end, q_end, _, spy = recorded
    rec = a.trajectory
    assert rec.seed == SEED and rec.rate == 20.0 and rec.values.dtype == np.float32
    n = len(rec)
    assert np.array_equal(rec.times, (np.arange(n) * 12 / 240).astype(np.float32))  # 12 steps of 1/240 s
    assert (
        rec.times[-1] <= end < rec.times[-1] + 1 / 20 and n > 40
    )  # the whole attempt, ~3.6 s after the settle
    positions = rec.column("position.")
    seen = {steps: q for steps, q in spy if steps % 12 == 0}
    assert len(seen) > n // 2  # the controllers step one step at a time: most samples are checked
    for steps, q in seen.items():
        assert np.array_equal(positions[steps // 12], q.astype(np.float32)), steps
    if len(seen) < n:  # the last sample: at most one period before the end, where the arm holds still
        assert np.allclose(positions[-1], q_end, atol=0.02)
    ee = rec.column("ee.")
    assert a.outcome == "lifted", a.outcome  # this seed lifts: the end effector ends at the lift height
    assert ee[-1, 2] == pytest.approx(a.grasp.z + GraspParams().lift_height, abs=0.03)
    gripper = rec.column("gripper.")  # command, opening
    assert gripper[0, 0] == 1.0 and gripper[-1, 0] == 0.0 and gripper[-1, 1] < 0.9  # opened, then closed
    assert np.allclose(rec.column("action.")[-1], positions[-1], atol=0.05)  # the arm holds its last target
    assert rec.frames.shape == (len(range(0, n, 4)), 64, 64, 3) and rec.camera_rate == 5.0
    assert np.array_equal(rec.frame_of_row()[:9], [0, 0, 0, 0, 1, 1, 1, 1, 2])


def test_recording_does_not_change_the_attempt(recorded):
    a, end, q_end, objects, _ = recorded
    b, end_b, q_b, objects_b = attempt()
    assert b.trajectory is None
    assert (a.outcome, a.success, end, a.grasp) == (b.outcome, b.success, end_b, b.grasp)
    assert np.array_equal(q_end, q_b)
    assert [o.position for o in objects] == [o.position for o in objects_b]


def test_recording_is_lossless_through_message_and_record(recorded):
    from myriad_interfaces.msg import Trajectory
    from myriad_storage.records import FILM, trajectory_from_record, trajectory_record

    rec = recorded[0].trajectory
    back = recording.from_msg(recording.to_msg(rec, Trajectory()))
    doc, images = trajectory_record(back)
    assert doc["shape"] == [len(rec), len(rec.columns)] and len(doc["data"]) == rec.values.size * 4
    assert doc["camera"] == {"rate": 5.0, "frames": len(rec.frames), "width": 64, "height": 64, "image": FILM}
    again = trajectory_from_record(doc, images[FILM])
    for r in (back, again):
        assert (r.seed, r.rate, r.columns, r.camera_rate) == (
            rec.seed,
            rec.rate,
            rec.columns,
            rec.camera_rate,
        )
        assert np.array_equal(r.values, rec.values) and np.array_equal(r.frames, rec.frames)
    assert recording.from_msg(Trajectory()) is None and trajectory_record(None) == (None, {})


def test_lerobot_export_without_trajectories_falls_back_and_refuses_a_mix(
    recorded, storage_store, storage_attempt_factory, tmp_path
):
    import json

    from myriad_storage.export import export
    from myriad_storage.records import trajectory_record

    store = storage_store
    store.create_campaign("old", [{"seed": i} for i in range(2)])
    for i in range(2):
        store.store_attempt(*storage_attempt_factory("old", i))
    r = export(store, "old", "lerobot", tmp_path / "old", progress=False)
    assert r.frames == 2 and r.note.startswith(
        "no attempt recorded a trajectory: each episode is the pre- and"
    )
    info = json.loads((tmp_path / "old" / "meta" / "info.json").read_text())
    assert info["fps"] == 1 and info["features"]["observation.state"]["names"][0] == "grasp_x"

    rec = recorded[0].trajectory
    store.create_campaign("mixed", [{"seed": i} for i in range(3)])
    for i in range(3):
        record, images = storage_attempt_factory("mixed", i)
        if i:
            record["trajectory"], film = trajectory_record(rec)
            images |= film
        store.store_attempt(record, images)
    with pytest.raises(ValueError, match="campaign 'mixed': 1 attempts have no recorded trajectory"):
        export(store, "mixed", "lerobot", tmp_path / "mixed", progress=False)
    r = export(
        store, "mixed", "parquet", tmp_path / "pq", progress=False
    )  # the Parquet export takes them all
    assert r.attempts == 3
