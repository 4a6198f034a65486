"""Model sources: resolving `pybullet_data:`, `object:<id>` and file paths, and checking files before PyBullet sees them."""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pybullet_data

MESH_SUFFIXES = (".obj", ".stl")
MODEL_SUFFIXES = (".urdf", ".sdf") + MESH_SUFFIXES
MAX_MESH_BYTES = 64 * 2**20  # a bigger mesh is too detailed to simulate; decimate it first


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


_checked: set[tuple[str, int, int]] = set()  # (path, mtime, size) of files that passed check_model_file


def check_model_file(path: Path) -> None:
    """Parse a URDF/SDF as XML (and the meshes a URDF refers to) and a mesh for finite vertices and faces
    within range, so that a bad file fails with a useful message instead of crashing PyBullet. A file that
    passed is not parsed again while its modification time and size stay the same."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _checked:
        _check_model_file(path)
        _checked.add(key)


def _check_model_file(path: Path) -> None:
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
            if suffix == ".sdf" and root.find(".//model/link") is None:
                raise ModelError(f"{path}: malformed SDF: no <model> with a <link>")
            for mesh in root.iter("mesh"):  # the meshes it refers to (PyBullet crashes on some bad ones)
                ref = path.parent / mesh.get("filename", "")
                if ref.suffix.lower() in MESH_SUFFIXES and ref.is_file():
                    check_model_file(ref)
        elif path.stat().st_size > MAX_MESH_BYTES:
            raise ModelError(f"{path}: mesh file larger than {MAX_MESH_BYTES // 2**20} MB; decimate it first")
        elif suffix == ".obj":
            check_triangles(path, *read_obj(path))
        elif suffix == ".stl":
            check_triangles(path, *read_stl(path))
    except ET.ParseError as exc:
        raise ModelError(f"{path}: malformed XML: {exc}") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None


def read_obj(path: Path) -> tuple[np.ndarray, list[list[int]]]:
    """Vertices (n x 3) and faces (0-based vertex indices) of a Wavefront OBJ; ModelError if malformed."""
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    with open(path, errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0] not in ("v", "f"):
                continue
            try:
                if parts[0] == "v":
                    vertices.append([float(v) for v in parts[1:4]])
                    if len(vertices[-1]) != 3:
                        raise ValueError
                else:  # "i", "i/t", "i/t/n" or "i//n"; negative indices count back from the last vertex
                    refs = [int(p.split("/")[0]) for p in parts[1:]]
                    faces.append([r - 1 if r > 0 else len(vertices) + r for r in refs])
                    if len(refs) < 3 or not all(0 <= i < len(vertices) for i in faces[-1]):
                        raise ModelError(
                            f"{path}:{number}: face {' '.join(parts[1:])!r} refers to a vertex that does not "
                            f"exist ({len(vertices)} defined before it) or has fewer than 3 vertices"
                        )
            except ValueError as exc:
                if isinstance(exc, ModelError):
                    raise
                raise ModelError(
                    f"{path}:{number}: malformed {parts[0]!r} line: {line.strip()[:80]!r}"
                ) from None
    return np.array(vertices, dtype=float).reshape(-1, 3), faces


def read_stl(path: Path) -> tuple[np.ndarray, list[list[int]]]:
    """Vertices and triangles of an ASCII or binary STL; ModelError if malformed."""
    data = path.read_bytes()
    if data[:5].lower() == b"solid" and b"facet" in data[:4096]:
        try:
            v = [
                [float(x) for x in line.split()[1:4]]
                for line in data.splitlines()
                if line.split()[:1] == [b"vertex"]
            ]
            vertices = np.array(v, dtype=float).reshape(-1, 3)
        except ValueError:
            raise ModelError(f"{path}: malformed ASCII STL: a 'vertex' line without three numbers") from None
        if len(vertices) != 3 * data.count(b"endfacet"):
            raise ModelError(
                f"{path}: malformed ASCII STL: {len(vertices)} vertices for {data.count(b'endfacet')} facets"
            )
    else:
        if len(data) < 84:  # not even a header and a triangle count
            return np.zeros((0, 3)), []
        n = struct.unpack_from("<I", data, 80)[0]
        if len(data) < 84 + 50 * n:
            raise ModelError(f"{path}: truncated binary STL: {n} triangles announced, {len(data)} bytes")
        rows = np.frombuffer(data, np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]), n, 84)
        vertices = rows["v"].reshape(-1, 3).astype(float)
    return vertices, [[3 * k, 3 * k + 1, 3 * k + 2] for k in range(len(vertices) // 3)]


_SPECK = (
    '<visual><geometry><box size="0.001 0.001 0.001"/></geometry>'
    '<material name="invisible"><color rgba="0 0 0 0"/></material></visual>'
)


def cached_file(stem: str, text: str, suffix: str) -> Path:
    """A file holding `text` in the temp directory, named by its content (written once, atomically)."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"myriad-{stem}-{digest}{suffix}"
    if not out.is_file():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    return out


def invisible(path: Path) -> Path:
    """The URDF at `path` with each link's visual shapes replaced by one invisible speck (its mesh filenames made
    absolute): the same bodies, joints and collision shapes for PyBullet, nothing to load or draw. (A link without
    any visual shape would be drawn by its collision shapes.) `path` itself if a mesh is named by a URI."""
    root = ET.parse(path).getroot()
    if any("://" in mesh.get("filename", "") for mesh in root.iter("mesh")):
        return path
    for link in root.iter("link"):
        visuals = link.findall("visual")
        for visual in visuals:
            link.remove(visual)
        if visuals:
            link.append(ET.fromstring(_SPECK))
    for mesh in root.iter("mesh"):
        name = mesh.get("filename", "")
        if name and not Path(name).is_absolute():
            mesh.set("filename", str(path.parent / name))
    return cached_file(f"{path.stem}-invisible", ET.tostring(root, encoding="unicode"), ".urdf")


def check_triangles(path: Path, vertices: np.ndarray, faces: list[list[int]]) -> None:
    """ModelError unless the mesh has finite vertices and at least one face spanning an area."""
    if not faces:
        raise ModelError(f"{path}: mesh has no faces")
    if not np.isfinite(vertices).all():
        raise ModelError(f"{path}: mesh has vertices that are not finite numbers")
    a, b, c = (vertices[[f[k] for f in faces]] for k in (0, 1, 2))
    if not (np.linalg.norm(np.cross(b - a, c - a), axis=1) > 0).any():
        raise ModelError(f"{path}: every face of the mesh is degenerate (zero area)")
