"""Model sources: resolving `pybullet_data:`, `object:<id>` and file paths, and checking files before PyBullet sees them."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pybullet_data

MESH_SUFFIXES = (".obj", ".stl")
MODEL_SUFFIXES = (".urdf", ".sdf") + MESH_SUFFIXES


class ModelError(ValueError):
    """A model source cannot be used; the message says which and why."""


def data_path() -> Path:
    return Path(pybullet_data.getDataPath())


def object_path(object_id: int) -> Path:
    """Path of packaged random object `object_id` (0-999)."""
    if not 0 <= object_id <= 999:
        raise ModelError(f"unknown object id {object_id}: packaged objects are numbered 0-999")
    return data_path() / "random_urdfs" / f"{object_id:03d}" / f"{object_id:03d}.urdf"


def resolve_source(source: str, base: Path | None = None) -> Path:
    """Turn a model source into an existing file path, or raise ModelError naming the source."""
    if source.startswith("object:"):
        raw = source.removeprefix("object:")
        if not raw.isdigit():
            raise ModelError(f"unknown object id {raw!r}: expected object:<0-999>")
        return object_path(int(raw))
    if source.startswith("pybullet_data:"):
        path = data_path() / source.removeprefix("pybullet_data:")
    else:
        path = Path(source).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(
            f"{path}: unsupported model type {path.suffix!r}; expected one of {', '.join(MODEL_SUFFIXES)}"
        )
    return path


def check_model_file(path: Path) -> None:
    """Parse a URDF/SDF as XML and a mesh for faces, so that a bad file fails with a useful message."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".urdf", ".sdf"):
            root = ET.parse(path).getroot()
            expected = "robot" if suffix == ".urdf" else "sdf"
            if root.tag != expected:
                raise ModelError(
                    f"{path}: malformed {suffix[1:].upper()}: root element <{root.tag}>, expected <{expected}>"
                )
            if suffix == ".urdf" and root.find("link") is None:
                raise ModelError(f"{path}: malformed URDF: no <link> element")
        elif suffix == ".obj":
            if count_obj_faces(path) == 0:
                raise ModelError(f"{path}: mesh has no faces")
        elif suffix == ".stl":
            if count_stl_faces(path) == 0:
                raise ModelError(f"{path}: mesh has no faces")
    except ET.ParseError as exc:
        raise ModelError(f"{path}: malformed XML: {exc}") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None


def count_obj_faces(path: Path) -> int:
    with open(path, errors="replace") as f:
        return sum(1 for line in f if line.startswith("f "))


def count_stl_faces(path: Path) -> int:
    data = path.read_bytes()
    if data[:5].lower() == b"solid" and b"facet" in data[:4096]:
        return data.count(b"facet normal")
    if len(data) < 84:
        return 0
    (n,) = struct.unpack_from("<I", data, 80)
    return n if len(data) >= 84 + 50 * n else 0
