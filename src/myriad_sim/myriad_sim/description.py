"""The robot's URDF: mesh filenames `pybullet_data:<path>` resolved to the installed pybullet_data package, as
absolute paths for PyBullet or as file:// URIs for robot_description (RViz)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pybullet as pb

from myriad_sim.models import ModelError, cached_file, data_path

_MESH = re.compile(r'filename="pybullet_data:([^"]+)"')


def resolve_meshes(urdf: str, uri: bool = False) -> str:
    """URDF text with every `pybullet_data:` mesh filename made absolute (file:// URIs when `uri`)."""
    base = data_path()

    def sub(m: re.Match) -> str:
        path = base / m.group(1)
        if not path.is_file():
            raise ModelError(f"mesh {m.group(0)}: no file {path} in the installed pybullet_data")
        return f'filename="{path.as_uri() if uri else path}"'

    return _MESH.sub(sub, urdf)


def robot_description(path: Path | str) -> str:
    """The URDF as published on robot_description: meshes as file:// URIs."""
    return resolve_meshes(Path(path).read_text(), uri=True)


def resolved_file(path: Path | str) -> Path:
    """A file PyBullet can load: the URDF with absolute mesh paths, cached by content in the temp directory."""
    return cached_file(Path(path).stem, resolve_meshes(Path(path).read_text()), ".urdf")


def load_robot_body(
    client: int, path: Path | str, position: Sequence[float], orientation: Sequence[float]
) -> int:
    """Load the robot URDF into a PyBullet client with a fixed base; returns the body id."""
    body = pb.loadURDF(
        str(resolved_file(path)), position, orientation, useFixedBase=True, physicsClientId=client
    )
    if body < 0:
        raise ModelError(f"{path}: PyBullet could not load the robot")
    return body
