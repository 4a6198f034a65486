"""Experiment API on a local world: user meshes in the camera, validation errors, closed-loop reach, recording."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from myriad import Experiment, ExperimentError, GraspResult
from myriad_runtime.loading import load_module
from myriad_storage.store import Store

WS = Path(__file__).resolve().parents[1]
EXAMPLES = WS / "examples"
BOX_FACES = [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)]


def box_vertices(size: float) -> list[tuple[float, float, float]]:
    h = size / 2
    return [(x * h, y * h, z * h) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]


def write_box_obj(path: Path, size: float = 0.04) -> Path:
    lines = [f"v {x} {y} {z}" for x, y, z in box_vertices(size)]
    lines += [f"f {a} {b} {c}\nf {a} {c} {d}" for a, b, c, d in BOX_FACES]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_box_stl(path: Path, size: float = 0.04) -> Path:
    v = box_vertices(size)
    tris = [t for a, b, c, d in BOX_FACES for t in ((a, b, c), (a, c, d))]
    data = b"\0" * 80 + struct.pack("<I", len(tris))
    for tri in tris:
        data += struct.pack("<3f", 0, 0, 0) + b"".join(struct.pack("<3f", *v[i - 1]) for i in tri) + b"\0\0"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def exp():
    with Experiment(world=WS / "worlds" / "tray.yaml", renderer="tiny") as e:
        yield e


def test_mesh_appears_in_segmentation_at_projected_pixel(exp, tmp_path):
    exp.reset(0)
    box = exp.load_object(write_box_obj(tmp_path / "box.obj"), (0.55, -0.08, 0.05, 0.0, 0.0, 0.3), fixed=True)
    stl = exp.load_object(write_box_stl(tmp_path / "box.stl"), (0.68, 0.1, 0.05), mass=0.2)
    assert (box.name, stl.name) == ("box_0", "box_1") and set(exp.objects()) == {"box_0", "box_1"}
    image = exp.camera()
    assert image.rgb.shape[2] == 3 and image.depth.dtype == np.float32 and image.intrinsics.shape == (3, 3)
    for obj in (box, stl):
        u, v = image.project(obj.position)
        assert image.segmentation[int(v), int(u)] == obj.body_id
        top = np.array(obj.position) + (0, 0, 0.02)
        assert image.depth[int(v), int(u)] == pytest.approx(exp.spec.camera.position[2] - top[2], abs=0.005)
    assert np.count_nonzero(image.segmentation == box.body_id) > 50
    exp.remove_object(box.name)
    assert box.name not in exp.objects() and not np.any(exp.camera().segmentation == box.body_id)


def test_load_object_validation_errors_name_the_argument(exp, tmp_path):
    exp.reset(0)
    obj = write_box_obj(tmp_path / "box.obj")
    empty_obj = tmp_path / "empty.obj"
    empty_obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    empty_stl = tmp_path / "empty.stl"
    empty_stl.write_text("solid empty\nendsolid empty\n")
    bad_urdf = tmp_path / "bad.urdf"
    bad_urdf.write_text("<robot><link name='a'>")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases = [
        (dict(path=tmp_path / "missing.obj"), "path", "not found"),
        (dict(path=tmp_path), "path", "not found"),
        (dict(path=bad_urdf), "path", "malformed XML"),
        (dict(path=text), "path", "unsupported model type"),
        (dict(path=empty_obj), "path", "no faces"),
        (dict(path=empty_stl), "path", "no faces"),
        (dict(pose=(5.0, 0.0, 0.1)), "pose", "outside the workspace"),
        (dict(pose=(0.6, 0.0, 0.0)), "pose", "would be inside"),
        (dict(pose=(0.6, 0.0)), "pose", "expected (x, y, z)"),
        (dict(pose=(0.6, 0.0, "high")), "pose", "expected (x, y, z)"),
        (dict(pose=((0.6, 0.0, 0.1), (0, 0, 0, 0))), "pose", "zero length"),
        (dict(scale=0.0), "scale", "positive"),
        (dict(scale=-1.0), "scale", "positive"),
        (dict(mass=0.0), "mass", "positive"),
        (dict(mass=-2.0), "mass", "positive"),
    ]
    for overrides, argument, words in cases:
        kwargs = {"path": obj, "pose": (0.6, 0.0, 0.1), **overrides}
        with pytest.raises(ExperimentError) as info:
            exp.load_object(**kwargs)
        assert info.value.argument == argument and words in str(info.value), (overrides, str(info.value))
        assert str(info.value).startswith(f"{argument}: ")
    exp.load_object(obj, (0.6, 0.0, 0.1), name="cube")
    with pytest.raises(ExperimentError, match="name: .*'cube' exists already"):
        exp.load_object(obj, (0.7, 0.1, 0.1), name="cube")
    with pytest.raises(ExperimentError, match="name: no entity called 'ghost'"):
        exp.remove_object("ghost")
    with pytest.raises(ExperimentError, match="name: 'tray' is part of the world file"):
        exp.remove_object("tray")
    with pytest.raises(ExperimentError, match="q: expected 7 joint positions, got 3"):
        exp.move_joints([0.0, 0.0, 0.0])
    with pytest.raises(ExperimentError, match="duration: expected a positive number"):
        exp.run(lambda inputs: None, EXAMPLES / "reach_transfer_functions.py", 0.0)


def test_proportional_brain_reaches_target_within_1_cm(exp):
    exp.reset(0)
    target = np.array([0.55, 0.12, 0.3])
    brain = load_module(EXAMPLES / "closed_loop_reach.py", "brain").ProportionalBrain(target)
    trace = exp.run(brain, EXAMPLES / "reach_transfer_functions.py", duration=3.0)
    errors = np.linalg.norm(trace.ee_positions - target, axis=1)
    assert errors[0] > 0.2 and errors[-1] < 0.01
    assert np.linalg.norm(exp.robot_state().ee_position - target) < 0.01


def test_grasp_and_record_into_storage(mongo_uri, tmp_path):
    from myriad_storage.store import Store

    database = f"test_{uuid.uuid4().hex[:12]}"
    with Experiment(
        world=WS / "worlds" / "tray.yaml", renderer="tiny", database_uri=mongo_uri, database=database
    ) as e:
        e.reset(5)
        box = e.load_object(write_box_obj(tmp_path / "box.obj"), (0.6, 0.02, 0.04))
        result = e.grasp(box.position[0], box.position[1], 0.4)
        assert isinstance(result, GraspResult) and result.outcome == "lifted", result
        assert result.success and result.lifted_object == box.name and result.lift_height > 0.1
        key = e.record(result)
        key2 = e.record({"note": "free-form", "success": False}, images={"scene_rgb": e.camera().rgb})
    with Store(mongo_uri, database) as store:
        doc = store.attempt(key)
        assert doc["success"] and doc["campaign"] == "experiment" and doc["grasp"]["yaw"] == 0.4
        assert set(doc["images"]) == {"pre_rgb", "pre_depth", "pre_segmentation", "post_rgb"}
        assert store.attempt(key2)["note"] == "free-form" and set(store.attempt(key2)["images"]) == {
            "scene_rgb"
        }
        store.client.drop_database(database)


def run_example(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=240, cwd=WS, env=env
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out


@pytest.mark.timeout(600)
def test_examples_run_as_documented(storage_local_server):
    """examples/ run for real (bounded): grasps collected and stored; the closed-loop reach converges."""
    out = run_example(
        "examples/collect_grasps.py", "--attempts", "2", "--database-uri", storage_local_server.uri
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("seed ")]
    assert len(lines) == 2 and all(
        re.match(r"seed \d: (success|failure) \(\w+\) -> collect_grasps/", x) for x in lines
    )
    with Store(storage_local_server.uri, "myriad") as store:
        docs = store.attempts({"campaign": "collect_grasps"})
    assert len(docs) == 2 and sorted(d["attempt_key"] for d in docs) == sorted(
        x.split("-> ")[1] for x in lines
    )
    out = run_example("examples/closed_loop_reach.py", "--duration", "2.5")
    final = re.search(r"final error ([\d.]+) mm", out.stdout)
    assert final and float(final.group(1)) < 10.0, out.stdout
