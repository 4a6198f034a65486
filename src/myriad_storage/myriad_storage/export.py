"""A campaign's attempts as a dataset: Parquet grasp dataset (Hugging Face `datasets` layout) or LeRobot v3.0.

Reads only (attempts and GridFS images, never changed). Streams: one shard (a Parquet file) at a time, written in
row groups of BATCH attempts, so memory is bounded whatever the campaign size. Everything is written under
``OUT/.partial``; each finished shard is renamed from a ``.tmp`` name and listed in ``.partial/manifest.json``,
so an interrupted export resumes from its last finished shard. Only when all shards are done are the files moved
into ``OUT`` and the card/metadata written last: an ``OUT`` without ``.partial`` is complete. Files are
deterministic (attempts sorted by item index and attempt key, no timestamps, fixed writer options), so exporting
the same attempts again gives identical files.

A LeRobot episode is an attempt's recorded trajectory (myriad_sim.recording): one frame per sample at its rate
(the dataset's fps), ``observation.state`` the joint positions, velocities, tool pose and gripper opening,
``action`` the joint targets and gripper command, ``observation.images.rgb`` the camera frame current at each
sample when frames were recorded. When no attempt recorded a trajectory, an episode is the pre- and post-grasp
image with the grasp pose as state and action (1 fps); a mix of both is refused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pymongo.errors import ConnectionFailure

from .codec import decode_png, encode_png
from .records import FILM, project, trajectory_from_record
from .store import StorageUnavailable, Store

FORMATS = ("parquet", "lerobot")
BATCH = 32  # attempts per row group (and per database round trip)
SHARD_ROWS = 500  # attempts per Parquet shard / LeRobot episodes per data file
PARTIAL = ".partial"
_EXPORT_NAMES = {"data", "meta", "README.md"}
TASK = "grasp an object from the tray"
LEROBOT_FPS = 1  # frames of an episode without a recorded trajectory: before and after the grasp
STATE = (
    "position.",
    "velocity.",
    "ee.",
    "gripper.opening",
)  # trajectory columns of observation.state, in order
ACTION = ("action.", "gripper.command")  # and of action
CHUNKS_SIZE = 1000  # LeRobot: files per chunk directory
_WRITER = {"compression": "zstd", "compression_level": 3, "use_dictionary": False, "write_statistics": True}
_STATE_NAMES = ["grasp_x", "grasp_y", "grasp_z", "grasp_yaw"]
_EPISODES_SCHEMA = pa.schema([
    ("episode_index", pa.int64()), ("tasks", pa.list_(pa.string())), ("length", pa.int64()),
    ("data/chunk_index", pa.int64()), ("data/file_index", pa.int64()), ("dataset_from_index", pa.int64()),
    ("dataset_to_index", pa.int64()), ("meta/episodes/chunk_index", pa.int64()),
    ("meta/episodes/file_index", pa.int64()), ("attempt_key", pa.string()), ("success", pa.bool_()),
])  # fmt: skip


@dataclass
class ExportResult:
    out: Path
    attempts: int
    shards: int
    resumed_shards: int
    frames: int
    note: str = ""  # how the episodes were built, when the reader should know (LeRobot without trajectories)


@dataclass(frozen=True)
class Episodes:
    """How LeRobot episodes are built: from the recorded trajectories (a frame per sample at `fps`, camera frames
    when recorded), or, when no attempt recorded one, the pre- and post-grasp images with the grasp as state."""

    trajectory: bool
    fps: float
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    images: bool

    @property
    def image_names(self) -> tuple[str, ...]:
        """The stored images the episodes need."""
        if self.trajectory:
            return (FILM,) if self.images else ()
        return ("pre_rgb", "post_rgb")


GRASP_EPISODES = Episodes(False, LEROBOT_FPS, tuple(_STATE_NAMES), tuple(_STATE_NAMES), True)


def _names(columns: list[str], prefixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for p in prefixes for c in columns if c.startswith(p))


def episodes_of(store: Store, query: dict, campaign: str) -> Episodes:
    """The episodes of the attempts matching ``query``: all recorded trajectories of one kind (rate, columns,
    camera frames), or none; ValueError for a mix."""
    kinds: set = set()
    missing = 0
    fields = {"trajectory.rate": True, "trajectory.columns": True, "trajectory.camera": True, "_id": False}
    try:
        for d in store.db.attempts.find(query, fields).batch_size(1000):
            t = d.get("trajectory") or {}
            if not t.get("rate"):
                missing += 1
                continue
            cam = t.get("camera") or {}
            kinds.add((t["rate"], tuple(t["columns"]), cam.get("width"), cam.get("height")))
    except ConnectionFailure as exc:
        raise StorageUnavailable(store.uri, str(exc).split(", Timeout:")[0][:300]) from exc
    if not kinds:
        return GRASP_EPISODES
    if missing:
        raise ValueError(
            f"campaign {campaign!r}: {missing} attempts have no recorded trajectory (collected with trajectory_rate "
            "0 or by an earlier version) and others have: a LeRobot dataset has one kind of episode; export a part "
            "with --since, or use --format parquet"
        )
    if len(kinds) > 1:
        rates = sorted({f"{k[0]:g} Hz" + (f" with {k[2]}x{k[3]} frames" if k[2] else "") for k in kinds})
        raise ValueError(
            f"campaign {campaign!r}: trajectories of different kinds ({', '.join(rates)}, or other columns): "
            "a LeRobot dataset has one frame rate and one set of features; export a part with --since"
        )
    rate, columns, width, _ = kinds.pop()
    return Episodes(
        True, rate, _names(list(columns), STATE), _names(list(columns), ACTION), width is not None
    )


def _image_feature() -> pa.DataType:
    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _fixed(dtype: pa.DataType, n: int) -> pa.DataType:
    return pa.list_(dtype, n)


# -- schemas: arrow types, `datasets` features (schema metadata "huggingface") -----------------------------------


def _hf_feature(t: pa.DataType) -> dict:
    if t == _image_feature():
        return {"_type": "Image"}
    if pa.types.is_fixed_size_list(t):
        return {"feature": _hf_feature(t.value_type), "length": t.list_size, "_type": "List"}
    names = {pa.string(): "string", pa.bool_(): "bool", pa.float32(): "float32", pa.float64(): "float64"}
    name = names.get(t, str(t))
    return {"dtype": name, "_type": "Value"}


def _schema(fields: list[tuple[str, pa.DataType]]) -> pa.Schema:
    features = {name: _hf_feature(t) for name, t in fields}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}, sort_keys=True).encode()}
    return pa.schema(fields, metadata=meta)


PARQUET_FIELDS = [
    ("attempt_key", pa.string()), ("campaign", pa.string()), ("item_index", pa.int64()),
    ("attempt_index", pa.int64()), ("backend", pa.string()), ("seed", pa.int64()), ("params", pa.string()),
    ("success", pa.bool_()), ("outcome", pa.string()), ("lifted_object", pa.string()),
    ("lift_height", pa.float64()), ("rgb", _image_feature()), ("depth", _image_feature()),
    ("camera_width", pa.int64()), ("camera_height", pa.int64()), ("camera_k", _fixed(pa.float64(), 9)),
    ("camera_position", _fixed(pa.float64(), 3)), ("camera_orientation", _fixed(pa.float64(), 4)),
    ("grasp_world", _fixed(pa.float64(), 4)), ("grasp_pixel", _fixed(pa.float64(), 2)),
    ("objects", pa.string()), ("code_version", pa.string()),
]  # fmt: skip


def _lerobot_fields(ep: Episodes) -> list[tuple[str, pa.DataType]]:
    return [
        *([("observation.images.rgb", _image_feature())] if ep.images else []),
        ("observation.state", _fixed(pa.float32(), len(ep.state_names))),
        ("action", _fixed(pa.float32(), len(ep.action_names))),
        ("next.reward", pa.float32()),
        ("next.done", pa.bool_()),
        ("next.success", pa.bool_()),
        ("timestamp", pa.float32()),
        ("frame_index", pa.int64()),
        ("episode_index", pa.int64()),
        ("index", pa.int64()),
        ("task_index", pa.int64()),
    ]


# -- helpers ------------------------------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


class Source:
    """The export's attempts from the database in a fixed order: one cursor, images fetched a batch at a time."""

    def __init__(self, store: Store, query: dict, images: tuple[str, ...]):
        self.store, self.query, self.names = store, query, images

    def docs(self, after: list | None) -> Iterator[dict]:
        """Attempt documents after ``after`` ([item_index, attempt_key] of the last one exported, or None) with
        their images' bytes under ``_png``."""
        q = self.query
        if after is not None:
            later = [
                {"item_index": {"$gt": after[0]}},
                {"item_index": after[0], "attempt_key": {"$gt": after[1]}},
            ]
            q = {"$and": [q, {"$or": later}]}
        try:
            cur = self.store.db.attempts.find(q, {"_id": False}).sort([("item_index", 1), ("attempt_key", 1)])
            it = iter(cur.batch_size(BATCH))
            while batch := list(itertools.islice(it, BATCH)):
                yield from self._with_images(batch)
        except ConnectionFailure as exc:
            raise StorageUnavailable(self.store.uri, str(exc).split(", Timeout:")[0][:300]) from exc

    def _with_images(self, docs: list[dict]) -> list[dict]:
        """``docs`` with the bytes of their images named in ``self.names`` under ``_png``."""
        wanted = [(d, n, (d.get("images") or {}).get(n)) for d in docs for n in self.names]
        data = self.store.images([fid for _d, _n, fid in wanted if fid is not None])
        for d in docs:
            d["_png"] = {}
        for d, n, fid in wanted:
            if fid is not None:
                d["_png"][n] = data[fid]
        return docs


# -- the two formats ----------------------------------------------------------------------------------------------


def _image(doc: dict, name: str) -> dict | None:
    data = doc["_png"].get(name)
    return (
        None
        if data is None
        else {"bytes": data, "path": f"{doc['attempt_key'].replace('/', '_')}_{name}.png"}
    )


def parquet_rows(docs: list[dict]) -> list[dict]:
    """Rows of the Parquet grasp dataset, one per attempt."""
    rows = []
    for d in docs:
        cam, g = d.get("camera") or {}, d.get("grasp") or {}
        gw = [float(g[c]) for c in ("x", "y", "z", "yaw")] if g else None
        rows.append({
            "attempt_key": d["attempt_key"], "campaign": d["campaign"], "item_index": d.get("item_index"),
            "attempt_index": d.get("attempt_index"), "backend": d.get("backend"), "seed": d.get("seed"),
            "params": json.dumps(d.get("params") or {}, sort_keys=True, default=str),
            "success": bool(d.get("success")), "outcome": (d.get("extra") or {}).get("outcome"),
            "lifted_object": d.get("lifted_object"), "lift_height": d.get("lift_height"),
            "rgb": _image(d, "pre_rgb"), "depth": _image(d, "pre_depth"),
            "camera_width": cam.get("width"), "camera_height": cam.get("height"), "camera_k": cam.get("k"),
            "camera_position": cam.get("position"), "camera_orientation": cam.get("orientation"),
            "grasp_world": gw, "grasp_pixel": project(cam, gw[:3]) if gw else None,
            "objects": json.dumps(d.get("objects") or [], sort_keys=True, default=str),
            "code_version": d.get("code_version"),
        })  # fmt: skip
    return rows


class _ImageStats:
    """Per-channel min/max/sum/sum of squares of RGB frames in [0, 1] (every 4th pixel of each row and column)."""

    def __init__(self, acc: dict | None = None):
        self.acc = acc or {"min": [1.0] * 3, "max": [0.0] * 3, "sum": [0.0] * 3, "sumsq": [0.0] * 3, "n": 0}

    def add(self, png: bytes) -> None:
        px = decode_png(png)[::4, ::4, :3].reshape(-1, 3).astype(np.float64) / 255.0
        a = self.acc
        a["min"] = np.minimum(a["min"], px.min(0)).tolist()
        a["max"] = np.maximum(a["max"], px.max(0)).tolist()
        a["sum"] = (np.asarray(a["sum"]) + px.sum(0)).tolist()
        a["sumsq"] = (np.asarray(a["sumsq"]) + (px * px).sum(0)).tolist()
        a["n"] += len(px)


def _vector_acc(values: np.ndarray) -> dict:
    v = values.astype(np.float64)
    return {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "sum": v.sum(0).tolist(),
            "sumsq": (v * v).sum(0).tolist(), "n": len(v)}  # fmt: skip


def _merge(accs: list[dict]) -> dict:
    return {
        "min": np.min([a["min"] for a in accs], 0).tolist(),
        "max": np.max([a["max"] for a in accs], 0).tolist(),
        "sum": np.sum([a["sum"] for a in accs], 0).tolist(),
        "sumsq": np.sum([a["sumsq"] for a in accs], 0).tolist(),
        "n": sum(a["n"] for a in accs),
    }


def _stats(acc: dict, frames: int, image: bool) -> dict:
    """LeRobot's stats entry (min, max, mean, std, count); images per channel with shape (3, 1, 1)."""
    mean = np.asarray(acc["sum"]) / acc["n"]
    std = np.sqrt(np.maximum(np.asarray(acc["sumsq"]) / acc["n"] - mean * mean, 0.0))
    shape = (lambda v: [[[x]] for x in v]) if image else (lambda v: list(v))
    out = {k: shape(np.round(np.asarray(v, float), 12).tolist()) for k, v in
           (("min", acc["min"]), ("max", acc["max"]), ("mean", mean), ("std", std))}  # fmt: skip
    return {**out, "count": [frames]}


def _quantiles(paths: list[Path], column: str, lo: list, hi: list, bins: int = 5000) -> dict:
    """LeRobot's quantiles (q01, q10, q50, q90, q99) of a numeric column per dimension, from a histogram of
    ``bins`` bins over [lo, hi] filled one data file at a time (linear within a bin)."""
    lo_a, top = np.asarray(lo, float), np.asarray(hi, float)
    hi_a = np.maximum(top, lo_a + 1e-6 * np.maximum(1.0, np.abs(lo_a)))  # a constant column: a range to split
    counts = np.zeros((len(lo_a), bins))
    for path in paths:
        col = pq.read_table(path, columns=[column]).column(0).combine_chunks()
        values = (col.flatten() if pa.types.is_fixed_size_list(col.type) else col).to_numpy(
            zero_copy_only=False
        )
        values = values.astype(float).reshape(len(col), -1)
        values = np.clip(values, lo_a, top)  # min and max are rounded to 12 decimals: keep the extremes in
        for j in range(len(lo_a)):
            counts[j] += np.histogram(values[:, j], bins, (lo_a[j], hi_a[j]))[0]
    out = {}
    for q in (0.01, 0.10, 0.50, 0.90, 0.99):
        row = []
        for j, c in enumerate(counts):
            cum = np.cumsum(c)
            k = int(np.searchsorted(cum, q * cum[-1]))
            before = cum[k - 1] if k else 0.0
            frac = (q * cum[-1] - before) / c[k] if c[k] else 0.0
            value = min(lo_a[j] + (k + frac) * (hi_a[j] - lo_a[j]) / bins, top[j])
            row.append(round(float(value), 12))
        out[f"q{round(q * 100):02d}"] = row
    return out


def trajectory_frames(d: dict, ep: Episodes) -> list[dict]:
    """The frames of an attempt's recorded trajectory: one per sample (timestamp k / fps), state and action from
    its columns, the camera frame current at each sample when frames were recorded."""
    rec = trajectory_from_record(d["trajectory"], d["_png"].get(FILM))
    cols = {c: i for i, c in enumerate(rec.columns)}
    state = rec.values[:, [cols[c] for c in ep.state_names]].tolist()
    action = rec.values[:, [cols[c] for c in ep.action_names]].tolist()
    out = [
        {"observation.state": state[k], "action": action[k], "timestamp": k / ep.fps} for k in range(len(rec))
    ]
    if ep.images:
        if rec.frames is None:
            raise ValueError(f"attempt {d['attempt_key']}: no {FILM} image (its trajectory's camera frames)")
        pngs = [encode_png(f) for f in rec.frames]
        name = d["attempt_key"].replace("/", "_")
        for row, f in zip(out, rec.frame_of_row()):
            row["observation.images.rgb"] = {"bytes": pngs[f], "path": f"{name}_{FILM}_{f:04d}.png"}
    return out


def grasp_frames(d: dict) -> list[dict]:
    """The two frames of an attempt without a trajectory: before and after the grasp (if a post-grasp image was
    stored), state and action the grasp pose (x, y, z, yaw)."""
    if "pre_rgb" not in d["_png"]:
        raise ValueError(f"attempt {d['attempt_key']}: no pre_rgb image (a LeRobot episode needs one)")
    g = d.get("grasp") or {}
    pose = [float(g.get(c, 0.0)) for c in ("x", "y", "z", "yaw")]
    names = ["pre_rgb"] + (["post_rgb"] if "post_rgb" in d["_png"] else [])
    return [{"observation.images.rgb": _image(d, name), "observation.state": pose, "action": pose,
             "timestamp": f / LEROBOT_FPS} for f, name in enumerate(names)]  # fmt: skip


def lerobot_rows(
    docs: list[dict], first_episode: int, first_frame: int, ep: Episodes = GRASP_EPISODES
) -> tuple[list[dict], list[dict]]:
    """(frame rows, episode rows) of LeRobot episodes (`trajectory_frames` or `grasp_frames`), the outcome as
    reward on the last frame."""
    frames, episodes = [], []
    index = first_frame
    for e, d in enumerate(docs, start=first_episode):
        rows = trajectory_frames(d, ep) if ep.trajectory else grasp_frames(d)
        success = bool(d.get("success"))
        start = index
        for f, row in enumerate(rows):
            last = f == len(rows) - 1
            frames.append({
                **row, "next.reward": float(success) if last else 0.0, "next.done": last,
                "next.success": success and last, "frame_index": f, "episode_index": e, "index": index,
                "task_index": 0,
            })  # fmt: skip
            index += 1
        episodes.append({"episode_index": e, "tasks": [TASK], "length": index - start,
                         "dataset_from_index": start, "dataset_to_index": index,
                         "attempt_key": d["attempt_key"], "success": success})  # fmt: skip
    return frames, episodes


# -- the export ---------------------------------------------------------------------------------------------------


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """The ``.partial`` directory in ``out``; refuses a non-empty ``out`` that is not a partial export."""
    try:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out}: exists and is not a directory")
        if out.is_dir():
            others = sorted(p for p in out.iterdir() if p.name != PARTIAL)
            if others and not overwrite:
                raise ValueError(f"--out {out}: not empty ({others[0].name}, ...); --overwrite to replace it")
            foreign = [p.name for p in others if p.name not in _EXPORT_NAMES]
            if foreign:  # --overwrite replaces an earlier export, never a directory of other files
                raise ValueError(
                    f"--out {out}: holds {foreign[0]}, not part of an export; choose a new directory"
                )
            for p in others:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        partial = out / PARTIAL
        partial.mkdir(parents=True, exist_ok=True)
        (partial / ".probe").write_bytes(b"")
        (partial / ".probe").unlink()
        return partial
    except PermissionError as exc:
        raise ValueError(f"--out {out}: not writable ({exc.strerror}: {exc.filename})") from None
    except OSError as exc:
        if isinstance(exc, ValueError):
            raise
        raise ValueError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def _query(campaign: str, only_success: bool, since: datetime | None) -> dict:
    q: dict = {"campaign": campaign}
    if only_success:
        q["success"] = True
    if since is not None:
        q["created_at"] = {"$gte": since}
    return q


def _until(query: dict, until: str | None) -> dict:
    """``query`` restricted to attempts created at or before ``until`` (ISO time; None: no restriction)."""
    if until is None:
        return query
    return {**query, "created_at": {**query.get("created_at", {}), "$lte": datetime.fromisoformat(until)}}


def export(
    store: Store,
    campaign: str,
    fmt: str,
    out: Path,
    only_success: bool = False,
    since: datetime | None = None,
    overwrite: bool = False,
    shard_rows: int = SHARD_ROWS,
    progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> ExportResult:
    """Export ``campaign``'s attempts (optionally only successes, created at or after ``since``) to ``out``.

    ValueError for bad input (format, campaign, nothing to export, output directory); StorageUnavailable when
    the database goes away (the finished shards stay for a resume). ``on_shard(i)`` is called after shard i is
    complete on disk.
    """
    from tqdm import tqdm

    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if shard_rows < 1:
        raise ValueError(f"--shard-size: expected a positive number, got {shard_rows}")
    if store.campaign(campaign) is None:
        known = [c["name"] for c in store.campaigns(limit=20)]
        raise ValueError(f"no campaign named {campaign!r}; known: {', '.join(known) or 'none'}")
    query = _query(campaign, only_success, since)
    newest = store.attempts(query, limit=1, sort=[("created_at", -1)])
    if not newest:
        what = " matching --only-success/--since" if only_success or since else ""
        raise ValueError(f"campaign {campaign!r} has no attempts{what} to export")
    ep = episodes_of(store, query, campaign) if fmt == "lerobot" else GRASP_EPISODES
    out = Path(out)
    partial = _prepare_out(out, overwrite)
    key = {"campaign": campaign, "format": fmt, "query": repr(sorted(query.items())), "shard_rows": shard_rows,
           "episodes": repr(ep), "version": 2}  # fmt: skip
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    manifest_path = partial / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if manifest.get("fingerprint") == fingerprint:  # resume: the attempts up to the first start's newest
        query = _until(query, manifest["until"])
    if manifest.get("fingerprint") != fingerprint or store.count_attempts(query) != manifest["total"]:
        shutil.rmtree(partial)  # another export's leftovers, or attempts deleted since: start afresh
        partial.mkdir()
        newest_at = newest[0].get("created_at")  # attempts stored while exporting wait for the next export
        until = newest_at.isoformat() if newest_at else None
        query = _until(_query(campaign, only_success, since), until)
        manifest = {"fingerprint": fingerprint, "until": until, "total": 0, "shards": {}}
        manifest["total"] = store.count_attempts(query)
    total = manifest["total"]
    n_shards = math.ceil(total / shard_rows)
    source = Source(store, query, ("pre_rgb", "pre_depth") if fmt == "parquet" else ep.image_names)
    done_shards = [manifest["shards"][str(i)] for i in range(len(manifest["shards"]))]
    docs = source.docs(done_shards[-1]["last"] if done_shards else None)
    resumed = len(manifest["shards"])
    bar = tqdm(total=total, unit="attempt", disable=not progress, file=sys.stderr, desc=f"export {campaign}")
    with bar:
        bar.update(sum(s["rows"] for s in manifest["shards"].values()))
        episode0 = frame0 = 0
        for i in range(n_shards):
            done = manifest["shards"].get(str(i))
            if done is None:
                done = _write_shard(docs, fmt, partial, i, n_shards, shard_rows, episode0, frame0, bar, ep)
                if done["rows"] != min(shard_rows, total - i * shard_rows):
                    raise ValueError(
                        f"campaign {campaign!r}: attempts were deleted while exporting; export again"
                    )
                manifest["shards"][str(i)] = done
                _write_atomic(manifest_path, _json(manifest))
                if on_shard is not None:
                    on_shard(i)
            episode0 += done["rows"]
            frame0 += done["frames"]
    shards = [manifest["shards"][str(i)] for i in range(n_shards)]
    if fmt == "parquet":
        _finish_parquet(partial, out, campaign, shards, total)
    else:
        _finish_lerobot(partial, out, shards, total, frame0, ep)
    note = ""
    if fmt == "lerobot" and not ep.trajectory:
        note = ("no attempt recorded a trajectory: each episode is the pre- and post-grasp image with the grasp "
                f"pose as state and action, at {LEROBOT_FPS} fps")  # fmt: skip
    return ExportResult(out, total, n_shards, resumed, frame0, note)


def _shard_name(fmt: str, i: int, n: int) -> str:
    if fmt == "parquet":
        return f"data/train-{i:05d}-of-{n:05d}.parquet"
    return f"data/chunk-{i // CHUNKS_SIZE:03d}/file-{i % CHUNKS_SIZE:03d}.parquet"


def _write_shard(source: Iterator[dict], fmt: str, partial: Path, i: int, n: int, shard_rows: int,
                 episode0: int, frame0: int, bar, ep: Episodes = GRASP_EPISODES) -> dict:  # fmt: skip
    """Write shard i (the next ``shard_rows`` attempts of ``source``) to a .tmp file, then rename it; its manifest
    entry."""
    path = partial / _shard_name(fmt, i, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    schema = _schema(PARQUET_FIELDS if fmt == "parquet" else _lerobot_fields(ep))
    rows = frames = 0
    episodes: list[dict] = []
    images = _ImageStats()
    vectors: list[dict] = []
    entry: dict = {}
    successes = 0
    with pq.ParquetWriter(tmp, schema, **_WRITER) as writer:
        while rows < shard_rows and (docs := list(itertools.islice(source, min(BATCH, shard_rows - rows)))):
            entry["last"] = [docs[-1]["item_index"], docs[-1]["attempt_key"]]
            if fmt == "parquet":
                table = pa.Table.from_pylist(parquet_rows(docs), schema=schema)
            else:
                fr, eps = lerobot_rows(docs, episode0 + rows, frame0 + frames, ep)
                table = pa.Table.from_pylist(fr, schema=schema)
                for f in fr if ep.images else ():
                    png = f["observation.images.rgb"]["bytes"]
                    size = list(png_size(png))
                    if size != entry.setdefault("image_size", size):
                        raise ValueError(
                            f"{f['observation.images.rgb']['path']}: {size[0]}x{size[1]} pixels, earlier frames "
                            f"{entry['image_size'][0]}x{entry['image_size'][1]}: a LeRobot dataset has one image size"
                        )
                    images.add(png)
                state, action = (np.array([f[k] for f in fr]) for k in ("observation.state", "action"))
                scalars = np.array([[f["next.reward"], f["timestamp"], f["frame_index"]] for f in fr])
                vectors.append({"state": _vector_acc(state), "action": _vector_acc(action),
                                "scalars": _vector_acc(scalars)})  # fmt: skip
                episodes += eps
                frames += len(fr)
            writer.write_table(table, row_group_size=len(table))
            rows += len(docs)
            successes += sum(bool(d.get("success")) for d in docs)
            bar.update(len(docs))
    os.replace(tmp, path)
    entry.update(
        rows=rows,
        successes=successes,
        frames=frames if fmt == "lerobot" else rows,
        file=_shard_name(fmt, i, n),
    )
    if fmt == "lerobot":
        entry["stats"] = {
            "image": images.acc,
            "state": _merge([v["state"] for v in vectors]),
            "action": _merge([v["action"] for v in vectors]),
            "scalars": _merge([v["scalars"] for v in vectors]),
        }
        entry["episodes"] = [{**e, "file": i} for e in episodes]
    return entry


def _move_into(partial: Path, out: Path, names: list[str]) -> None:
    """Move the finished files from ``.partial`` into ``out`` in this order, then remove ``.partial``."""
    for name in names:
        os.replace(partial / name, out / name)
    shutil.rmtree(partial)


def _finish_parquet(partial: Path, out: Path, campaign: str, shards: list[dict], total: int) -> None:
    features = [{"name": n, **_yaml_feature(t)} for n, t in PARQUET_FIELDS]
    size = sum((partial / s["file"]).stat().st_size for s in shards)
    metas = [pq.read_metadata(partial / s["file"]) for s in shards]
    raw = sum(m.row_group(g).total_byte_size for m in metas for g in range(m.num_row_groups))
    card = {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
        "dataset_info": {"features": features,
                         "splits": [{"name": "train", "num_bytes": raw, "num_examples": total}],
                         "download_size": size, "dataset_size": raw},
        "tags": ["robotics", "grasping", "myriad"],
        "task_categories": ["robotics"],
    }  # fmt: skip
    import yaml

    text = (
        "---\n" + yaml.safe_dump(card, sort_keys=False, width=120) + "---\n\n"
        f"# Myriad grasp dataset: campaign `{campaign}`\n\n"
        f"{total} grasp attempts ({sum(s['successes'] for s in shards)} successful) in {len(shards)} Parquet "
        "shard(s) under `data/`, one row per attempt.\n\n"
        "- `rgb`, `depth`: the pre-grasp camera images as PNG (`depth`: 16-bit, millimetres, 0 = no reading).\n"
        "- `camera_k`: 3x3 intrinsics, row-major; `camera_position`/`camera_orientation`: the optical frame in the\n"
        "  world (x right, y down, z forward; quaternion xyzw) when the attempt recorded it, else null.\n"
        "- `grasp_world`: x, y, z (m), yaw (rad) in the world; `grasp_pixel`: (u, v) of the grasp point in `rgb`\n"
        "  (null without a camera pose).\n"
        "- `success`: the label (object lifted); `outcome`, `lifted_object`, `lift_height`: details.\n"
        "- `seed`, `params` (JSON): replay the attempt with Myriad; `objects` (JSON): names, sources and poses.\n\n"
        "```python\nimport datasets, pandas\n"
        'ds = datasets.load_dataset("parquet", data_dir="data", split="train")\n'
        'df = pandas.read_parquet("data")\n```\n'
    )
    (partial / "README.md").write_text(text)
    _move_into(partial, out, ["data", "README.md"])  # the card last: its presence marks the export complete


def _yaml_feature(t: pa.DataType) -> dict:
    f = _hf_feature(t)
    if f["_type"] == "Image":
        return {"dtype": "image"}
    if f["_type"] == "List":
        return {"list": f["feature"]["dtype"], "length": f["length"]}
    return {"dtype": f["dtype"]}


def _finish_lerobot(
    partial: Path, out: Path, shards: list[dict], total: int, frames: int, ep: Episodes
) -> None:
    import pandas as pd

    meta = partial / "meta"
    (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"task_index": [0]}, index=pd.Index([TASK], name="task")).to_parquet(meta / "tasks.parquet")
    rows = []
    for s in shards:
        for e in s["episodes"]:
            i = e.pop("file")
            rows.append({
                **e, "data/chunk_index": i // CHUNKS_SIZE, "data/file_index": i % CHUNKS_SIZE,
                "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
            })  # fmt: skip
    episodes = pa.Table.from_pylist(rows, schema=_EPISODES_SCHEMA)
    pq.write_table(episodes, meta / "episodes" / "chunk-000" / "file-000.parquet", **_WRITER)
    state = _merge([s["stats"]["state"] for s in shards])
    action = _merge([s["stats"]["action"] for s in shards])
    scalars = _merge([s["stats"]["scalars"] for s in shards])

    def pick(acc: dict, j: int) -> dict:
        return {k: ([v[j]] if isinstance(v, list) else v) for k, v in acc.items()}

    indexes = {"n": 1, "min": [0], "max": [frames - 1], "sum": [frames * (frames - 1) / 2],
               "sumsq": [(frames - 1) * frames * (2 * frames - 1) / 6]}  # fmt: skip
    stats = {
        "observation.state": _stats(state, frames, image=False),
        "action": _stats(action, frames, image=False),
        "next.reward": _stats(pick(scalars, 0), frames, image=False),
        "timestamp": _stats(pick(scalars, 1), frames, image=False),
        "frame_index": _stats(pick(scalars, 2), frames, image=False),
        "index": _stats({**indexes, "n": frames}, frames, image=False),
    }
    paths = [partial / s["file"] for s in shards]
    for name in ("observation.state", "action", "next.reward", "timestamp", "frame_index", "index"):
        stats[name].update(_quantiles(paths, name, stats[name]["min"], stats[name]["max"]))
    features = {}
    if ep.images:
        stats["observation.images.rgb"] = _stats(_merge([s["stats"]["image"] for s in shards]), frames, True)
        width, height = shards[0]["image_size"]
        if any(s["image_size"] != [width, height] for s in shards):
            raise ValueError(
                f"{out}: frames of {width}x{height} and other sizes: a LeRobot dataset has one image size"
            )
        features["observation.images.rgb"] = {"dtype": "image", "shape": [height, width, 3],
                                              "names": ["height", "width", "channels"]}  # fmt: skip
    (meta / "stats.json").write_bytes(_json(stats))
    scalar = {"shape": [1], "names": None}
    features |= {
        "observation.state": {"dtype": "float32", "shape": [len(ep.state_names)], "names": list(ep.state_names)},
        "action": {"dtype": "float32", "shape": [len(ep.action_names)], "names": list(ep.action_names)},
        "next.reward": {"dtype": "float32", **scalar}, "next.done": {"dtype": "bool", **scalar},
        "next.success": {"dtype": "bool", **scalar}, "timestamp": {"dtype": "float32", **scalar},
        "frame_index": {"dtype": "int64", **scalar}, "episode_index": {"dtype": "int64", **scalar},
        "index": {"dtype": "int64", **scalar}, "task_index": {"dtype": "int64", **scalar},
    }  # fmt: skip
    info = {
        "codebase_version": "v3.0", "robot_type": "kuka_iiwa", "fps": int(ep.fps) if ep.fps == int(ep.fps) else ep.fps,
        "total_episodes": total, "total_frames": frames, "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
        "features": features, "splits": {"train": f"0:{total}"},
    }  # fmt: skip
    (meta / "info.json").write_bytes(_json(info))
    _move_into(partial, out, ["data", "meta"])  # meta/ (with info.json) last: it marks the export complete
