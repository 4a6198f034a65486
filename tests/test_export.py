"""`myriad export`: Parquet grasp dataset and LeRobot v3.0 from a real database, read back and checked."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from myriad_storage.codec import decode_png
from myriad_storage.export import BATCH, export

CAMPAIGN = "exp"


@pytest.fixture
def filled(storage_store, dashboard_attempt):
    """A campaign of 7 attempts (odd indexes fail), stored out of index order."""
    storage_store.create_campaign(CAMPAIGN, [{"seed": i} for i in range(7)])
    for i in (3, 0, 6, 1, 5, 2, 4):
        storage_store.store_attempt(*dashboard_attempt(CAMPAIGN, i, success=i % 2 == 0))
    return storage_store


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_parquet_rows_equal_the_documents_and_images(filled, tmp_path):
    out = tmp_path / "pq"
    r = export(filled, CAMPAIGN, "parquet", out, shard_rows=3, progress=False)
    assert (r.attempts, r.shards) == (7, 3)
    assert sorted(files(out)) == [
        "README.md",
        "data/train-00000-of-00003.parquet",
        "data/train-00001-of-00003.parquet",
        "data/train-00002-of-00003.parquet",
    ]
    df = pd.read_parquet(out / "data")
    assert list(df.item_index) == list(range(7))
    for row in df.itertuples():
        doc = filled.attempt(row.attempt_key)
        assert row.rgb["bytes"] == filled.image(doc["images"]["pre_rgb"])
        assert row.depth["bytes"] == filled.image(doc["images"]["pre_depth"])
        assert decode_png(row.depth["bytes"]).dtype == np.uint16
        assert row.success == doc["success"] and row.seed == doc["seed"]
        assert json.loads(row.params) == doc["params"]
        g = doc["grasp"]
        assert list(row.grasp_world) == [g["x"], g["y"], g["z"], g["yaw"]]
        assert list(row.camera_k) == doc["camera"]["k"]
    card = (out / "README.md").read_text()
    assert "num_examples: 7" in card and "path: data/train-*.parquet" in card
    assert "7 grasp attempts (4 successful)" in card


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_parquet_loads_with_datasets(filled, tmp_path):
    import datasets
    import yaml

    out = tmp_path / "pq"
    export(filled, CAMPAIGN, "parquet", out, shard_rows=4, progress=False)
    ds = datasets.load_dataset(
        "parquet", data_dir=str(out / "data"), split="train", cache_dir=str(tmp_path / "c")
    )
    assert len(ds) == 7
    assert isinstance(ds.features["rgb"], datasets.Image) and isinstance(ds.features["depth"], datasets.Image)
    card = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert datasets.Features._from_yaml_list(card["dataset_info"]["features"]) == ds.features
    by_card = datasets.load_dataset(
        str(out), split="train", cache_dir=str(tmp_path / "c")
    )  # the card's configs
    assert by_card["attempt_key"] == ds["attempt_key"]
    row = ds[2]
    doc = filled.attempt(row["attempt_key"])
    want = decode_png(filled.image(doc["images"]["pre_rgb"]))
    assert np.array_equal(np.asarray(row["rgb"].convert("RGB")), want)
    assert row["success"] == doc["success"]


def test_only_success_and_since(filled, tmp_path):
    export(filled, CAMPAIGN, "parquet", tmp_path / "s", only_success=True, progress=False)
    df = pd.read_parquet(tmp_path / "s" / "data")
    assert list(df.item_index) == [0, 2, 4, 6] and df.success.all()
    last = max(d["created_at"] for d in filled.attempts({"campaign": CAMPAIGN}))
    export(filled, CAMPAIGN, "parquet", tmp_path / "t", since=last, progress=False)
    assert len(pd.read_parquet(tmp_path / "t" / "data")) == 1


def test_lerobot_layout_and_consistency(filled, tmp_path):
    out = tmp_path / "lr"
    export(filled, CAMPAIGN, "lerobot", out, shard_rows=4, progress=False)
    assert sorted(files(out)) == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
    ]
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (7, 14, 1)
    frames = pd.read_parquet(out / "data")
    assert set(frames.columns) == set(info["features"])
    assert info["features"]["observation.images.rgb"]["shape"] == [64, 64, 3]
    assert list(frames["index"]) == list(range(14))
    episodes = pd.read_parquet(out / "meta/episodes/chunk-000/file-000.parquet")
    assert list(episodes.episode_index) == list(range(7))
    for ep in episodes.to_dict("records"):
        rows = frames[frames.episode_index == ep["episode_index"]]
        assert len(rows) == ep["length"] == ep["dataset_to_index"] - ep["dataset_from_index"]
        assert list(rows["index"]) == list(range(ep["dataset_from_index"], ep["dataset_to_index"]))
        assert list(rows.frame_index) == list(range(ep["length"]))
        path = info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
        assert ep["episode_index"] in set(pd.read_parquet(out / path).episode_index)
        assert list(ep["tasks"]) == ["grasp an object from the tray"]
        doc = filled.attempt(ep["attempt_key"])
        assert list(rows["next.done"]) == [False, True]
        assert list(rows["next.reward"]) == [0.0, float(doc["success"])]
        first = rows.iloc[0]["observation.images.rgb"]["bytes"]
        assert first == filled.image(doc["images"]["pre_rgb"])
        assert rows.iloc[1]["observation.images.rgb"]["bytes"] == filled.image(doc["images"]["post_rgb"])
        g = doc["grasp"]
        assert np.allclose(rows.iloc[0]["action"], [g["x"], g["y"], g["z"], g["yaw"]])
    tasks = pd.read_parquet(out / "meta/tasks.parquet")
    assert tasks.loc["grasp an object from the tray"].task_index == 0
    stats = json.loads((out / "meta/stats.json").read_text())
    for key in ("observation.images.rgb", "observation.state", "action", "next.reward", "index"):
        assert {"min", "max", "mean", "std", "count"} <= stats[key].keys()
    assert np.array(stats["observation.images.rgb"]["mean"]).shape == (3, 1, 1)
    assert stats["next.reward"]["max"] == [1.0] and stats["index"]["count"] == [14]
    for key in ("observation.state", "action", "next.reward", "timestamp", "frame_index", "index"):
        qs = [np.array(stats[key][q]) for q in ("q01", "q10", "q50", "q90", "q99")]
        assert all((a <= b + 1e-9).all() for a, b in zip(qs, qs[1:], strict=False))
        assert (np.array(stats[key]["min"]) - 1e-9 <= qs[0]).all() and (qs[-1] <= stats[key]["max"]).all()
    # episodes 0, 2, 4, 6 succeed: 4 of 14 frames have reward 1; the grasp yaw is 0.3 * (index % 4)
    assert stats["next.reward"]["q50"][0] == pytest.approx(0.0, abs=1e-3)  # a histogram's bin: within 1/5000
    assert stats["next.reward"]["q90"][0] == pytest.approx(1.0, abs=1e-3)
    assert 6.0 <= stats["index"]["q50"][0] <= 7.0  # frames 0..13: the median lies between 6 and 7
    assert stats["observation.state"]["q99"][3] == pytest.approx(0.9, abs=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_lerobot_files_load_as_lerobot_reads_them(filled, tmp_path):
    """LeRobot v3's read path without torch: data and episodes through `datasets.Dataset.from_parquet` with the
    features info.json declares (LeRobot's mapping: image -> Image, shape (1,) -> Value, (n,) -> List of n)."""
    import datasets

    out = tmp_path / "lr"
    export(filled, CAMPAIGN, "lerobot", out, shard_rows=3, progress=False)
    info = json.loads((out / "meta/info.json").read_text())

    def hf(ft: dict) -> datasets.features.features.FeatureType:
        if ft["dtype"] == "image":
            return datasets.Image()
        if ft["shape"] == [1]:
            return datasets.Value(ft["dtype"])
        return datasets.List(datasets.Value(ft["dtype"]), length=ft["shape"][0])

    features = datasets.Features({k: hf(ft) for k, ft in info["features"].items()})
    paths = sorted(str(p) for p in (out / "data").glob("*/*.parquet"))
    data = datasets.Dataset.from_parquet(paths, features=features, cache_dir=str(tmp_path / "c"))
    assert len(data) == info["total_frames"] and data.features == features
    frame = data[3]
    assert frame["observation.images.rgb"].size == (64, 64) and len(frame["observation.state"]) == 4
    assert abs(frame["timestamp"] - frame["frame_index"] / info["fps"]) < 1e-6
    episodes = datasets.Dataset.from_parquet(
        sorted(str(p) for p in (out / "meta/episodes").glob("*/*.parquet")), cache_dir=str(tmp_path / "c")
    )
    assert len(episodes) == info["total_episodes"] == int(info["splits"]["train"].split(":")[1])
    assert sum(episodes["length"]) == info["total_frames"]
    tasks = pd.read_parquet(out / "meta/tasks.parquet")
    assert tasks.index.name == "task" and len(tasks) == info["total_tasks"]


@pytest.mark.skipif(
    importlib.util.find_spec("lerobot") is None,
    reason="lerobot not installed (an optional extra that needs PyTorch)",
)
def test_lerobot_loader_reads_the_export(filled, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    export(filled, CAMPAIGN, "lerobot", tmp_path / "lr", progress=False)
    ds = LeRobotDataset("local/exp", root=tmp_path / "lr")
    assert ds.num_episodes == 7 and ds.num_frames == 14
    assert ds[1]["next.reward"].item() in (0.0, 1.0)


@pytest.mark.parametrize("fmt", ["parquet", "lerobot"])
def test_interrupted_export_resumes_to_identical_files(filled, tmp_path, fmt):
    clean = tmp_path / "clean"
    export(filled, CAMPAIGN, fmt, clean, shard_rows=2, progress=False)

    def stop_after_first(i: int) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        export(filled, CAMPAIGN, fmt, out, shard_rows=2, progress=False, on_shard=stop_after_first)
    assert [p.name for p in out.iterdir()] == [".partial"]  # nothing looks complete
    written: list[int] = []
    r = export(filled, CAMPAIGN, fmt, out, shard_rows=2, progress=False, on_shard=written.append)
    assert r.resumed_shards == 1 and written == [1, 2, 3]
    assert files(out) == files(clean)
    export(filled, CAMPAIGN, fmt, clean, shard_rows=2, progress=False, overwrite=True)
    assert files(out) == files(clean)


def run_cli(uri: str, database: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "myriad_frontend.cli", "export", "--mongo-uri", uri, "--database", database]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def test_bad_input_is_one_line_with_exit_codes(filled, mongo_uri, tmp_path):
    db = filled.db.name
    cases = [
        (["nope", "--format", "parquet", "--out", str(tmp_path / "a")], "no campaign named 'nope'"),
        (
            [CAMPAIGN, "--format", "parquet", "--out", str(tmp_path / "b"), "--since", "2999-01-01"],
            "no attempts",
        ),
        ([CAMPAIGN, "--format", "parquet", "--out", str(tmp_path / "c"), "--since", "yesterday"], "--since"),
        ([CAMPAIGN, "--format", "parquet", "--out", "/proc/myriad-export"], "--out /proc/myriad-export"),
    ]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cases.append(([CAMPAIGN, "--format", "lerobot", "--out", str(tmp_path / "full")], "not empty"))
    for args, text in cases:
        r = run_cli(mongo_uri, db, "--quiet", *args)
        assert r.returncode == 2, r.stderr
        assert text in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    over = [CAMPAIGN, "--format", "lerobot", "--out", str(tmp_path / "full"), "--overwrite"]
    r = run_cli(mongo_uri, db, "--quiet", *over)  # --overwrite replaces an export, not other files
    assert r.returncode == 2 and "holds keep.txt, not part of an export" in r.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    (tmp_path / "full" / "keep.txt").unlink()
    export(filled, CAMPAIGN, "parquet", tmp_path / "full", progress=False)
    r = run_cli(mongo_uri, db, "--quiet", *over)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["data", "meta"]
    r = run_cli(
        "mongodb://127.0.0.1:9/", db, "--quiet", CAMPAIGN, "--format", "parquet", "--out", str(tmp_path / "d")
    )
    assert r.returncode == 3 and "not reachable" in r.stderr


def test_database_going_away_mid_export_leaves_it_incomplete(tmp_path, storage_attempt_factory):
    from conftest import free_port

    from myriad_storage.server import LocalServer
    from myriad_storage.store import StorageUnavailable, Store

    server = LocalServer(tmp_path / "db", port=free_port())
    uri = server.ensure_running()
    try:
        store = Store(uri, "t", server_timeout_ms=1500)
        n = 2 * BATCH + 1  # more than the export reads ahead (a batch of documents and their images)
        store.create_campaign("gone", [{"seed": i} for i in range(n)])
        for i in range(n):
            store.store_attempt(*storage_attempt_factory("gone", i, size=8))

        def stop_server(i: int) -> None:
            server.stop()

        out = tmp_path / "out"
        with pytest.raises(StorageUnavailable):
            export(store, "gone", "parquet", out, shard_rows=2, progress=False, on_shard=stop_server)
        assert [p.name for p in out.iterdir()] == [".partial"]
        server.ensure_running()
        r = export(store, "gone", "parquet", out, shard_rows=2, progress=False)
        # the shards of the batch read before the server stopped were finished
        assert r.resumed_shards == BATCH // 2 and len(pd.read_parquet(out / "data")) == n
        store.close()
    finally:
        server.stop()


def test_lerobot_refuses_mixed_image_sizes(filled, storage_attempt_factory, tmp_path):
    filled.create_campaign("mixed", [{"seed": i} for i in range(2)])
    for i, size in ((0, 64), (1, 32)):
        filled.store_attempt(*storage_attempt_factory("mixed", i, size=size))
    with pytest.raises(ValueError, match="32x32 pixels, earlier frames 64x64"):
        export(filled, "mixed", "lerobot", tmp_path / "m", progress=False)
    assert [p.name for p in (tmp_path / "m").iterdir()] == [".partial"]


def test_attempts_stored_during_an_export_wait_for_the_next(filled, dashboard_attempt, tmp_path):
    clean = tmp_path / "clean"
    export(filled, CAMPAIGN, "parquet", clean, shard_rows=3, progress=False)

    def store_another(i: int) -> None:
        filled.store_attempt(*dashboard_attempt(CAMPAIGN, 7 + i))
        if i == 0:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export(filled, CAMPAIGN, "parquet", out, shard_rows=3, progress=False, on_shard=store_another)
    r = export(filled, CAMPAIGN, "parquet", out, shard_rows=3, progress=False, on_shard=store_another)
    assert (r.attempts, r.resumed_shards) == (7, 1) and files(out) == files(clean)
    again = export(filled, CAMPAIGN, "parquet", tmp_path / "again", progress=False)
    assert again.attempts == 10


def test_store_images_reads_several_and_names_a_missing_one(filled):
    docs = filled.attempts({"campaign": CAMPAIGN}, limit=2)
    ids = [d["images"][n] for d in docs for n in ("pre_rgb", "pre_depth")]
    assert filled.images(ids) == {fid: filled.image(fid) for fid in ids}
    filled.bucket.delete(ids[1])
    with pytest.raises(KeyError, match=str(ids[1])):
        filled.images(ids)
