"""Hardening: a bad world or robot file named by the back-end description is one clear error before any back
end starts; the world spec bounds the camera."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import WS, collect_command

from myriad_sim.spec import SpecError, load_world
from myriad_storage.store import Store


def _world(
    tmp_path: Path, camera: dict | None = None, robot: dict | None = None, description: str = ""
) -> Path:
    """A copy of worlds/tray.yaml (with a copy of its robot file) changed as given; returns the world path."""
    world = yaml.safe_load((WS / "worlds" / "tray.yaml").read_text())
    rob = yaml.safe_load((WS / "urdf" / "iiwa_wsg50.yaml").read_text())
    rob["model"] = str(WS / "urdf" / rob["model"])  # the copy names the workspace's URDF
    rob.update(robot or {})
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(rob))
    world["robot"]["description"] = description or str(tmp_path / "robot.yaml")
    world["camera"].update(camera or {})
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world))
    return path


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(camera={"width": 0}), ["camera.width", "a positive integer"]),
        (dict(camera={"height": 100000}), ["camera.height", "up to 4096"]),
        (dict(description="/nonexistent/robot.yaml"), ["robot.description", "/nonexistent/robot.yaml"]),
        (
            dict(robot={"arm_joints": ["J0", "J1", "J2", "J3", "J4", "J5", "nope"]}),
            ["has no joints ['nope']"],
        ),
        (dict(robot={"ee_link": "nolink"}), ["has no link 'nolink'"]),
    ],
)
def test_bad_world_is_refused_before_any_backend_starts(mongo_uri, tmp_path, change, words):
    world = _world(tmp_path, **change)
    desc = (WS / "config" / "backend.yaml").read_text().replace("${ws}/worlds/tray.yaml", str(world))
    (tmp_path / "backend.yaml").write_text(desc)
    name = f"badworld-{tmp_path.name}"
    cmd = collect_command(
        mongo_uri, "--attempts", "1", "--name", name, "--description", str(tmp_path / "backend.yaml")
    )
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-3000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("myriad: ") and str(world) in line and "Traceback" not in out.stderr
    for w in words:
        assert w in line, line
    assert Store(mongo_uri, "t").campaign(name) is None
    assert not (WS / "log" / "runs" / name).exists()  # no back end was started


def test_camera_size_is_bounded(tmp_path):
    assert load_world(_world(tmp_path, camera={"width": 4096, "height": 4096})).camera.width == 4096
    with pytest.raises(SpecError, match=r"camera\.width.*up to 4096.*100000"):
        load_world(_world(tmp_path, camera={"width": 100000}))
    with pytest.raises(SpecError, match=r"camera\.fov_deg"):
        load_world(_world(tmp_path, camera={"fov_deg": 180.0}))
