"""One config reader (myriad_sim.config) for world, robot, planning and CLE files: unknown fields are rejected
with the file and the field named; planning defaults are written once and equal config/planning.yaml."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from myriad_cle.config import load_config as load_cle
from myriad_planning.config import PlanningConfig
from myriad_planning.config import load_config as load_planning
from myriad_sim.config import ConfigError
from myriad_sim.spec import load_world

WS = Path(__file__).resolve().parents[1]


def test_planning_defaults_are_those_of_planning_yaml(tmp_path):
    shipped = load_planning(WS / "config" / "planning.yaml")
    assert dataclasses.replace(shipped, planners=None) == PlanningConfig()
    (tmp_path / "empty.yaml").write_text("{}\n")
    assert dataclasses.replace(load_planning(tmp_path / "empty.yaml"), planners=None) == PlanningConfig()


def edited(source: Path, tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(source.read_text())
    edit(data)
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("source", "edit", "field"),
    [
        ("config/planning.yaml", lambda d: d.update(time_limt=3.0), "time_limt"),
        ("config/planning.yaml", lambda d: d["collision"].update(pading=0.01), "collision.pading"),
        ("worlds/tray.yaml", lambda d: d.update(camra={}), "camra"),
        ("worlds/tray.yaml", lambda d: d["models"][0].update(colour="red"), "models[0].colour"),
        ("worlds/tray.yaml", lambda d: d["objects"]["region"].update(z=[0, 1]), "objects.region.z"),
        (
            "urdf/iiwa_wsg50.yaml",
            lambda d: d["gripper"]["fingers"][0].update(speed=1),
            "gripper.fingers[0].speed",
        ),
    ],
)
def test_unknown_fields_are_rejected_with_file_and_field(tmp_path, source, edit, field):
    path = edited(WS / source, tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        if source.startswith("config"):
            load_planning(path)
        elif source.startswith("urdf"):
            import shutil

            from myriad_sim.spec import load_robot

            shutil.copy(WS / "urdf" / "iiwa_wsg50.urdf", tmp_path)  # the robot YAML names its URDF beside it
            load_robot(path)
        else:
            load_world(path, WS)
    assert f"{path}: field '{field}': unknown field (known: " in str(info.value)


def test_cle_experiment_file_rejects_unknown_fields(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text("brain: brain.py:Brain\ntransfer_functions: tfs.py\nduraton: 5\n")
    with pytest.raises(
        ConfigError, match=r"experiment\.yaml: field 'duraton': unknown field \(known: brain,"
    ):
        load_cle(path)
