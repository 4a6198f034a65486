"""A real small `myriad collect` run exported in both formats by the `myriad export` command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import collect_command, free_port

from myriad_storage.codec import decode_png
from myriad_storage.store import Store


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    from myriad_storage.server import LocalServer

    server = LocalServer(tmp_path_factory.mktemp("db"), port=free_port())
    uri = server.ensure_running()
    try:
        out = subprocess.run(
            collect_command(uri, "--attempts", "3", "--seed", "5", "--name", "real", "--quiet"),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        yield uri
    finally:
        server.stop()


def export_cli(uri: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "myriad_frontend.cli",
        "export",
        "--mongo-uri",
        uri,
        "--database",
        "t",
        "real",
    ]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def test_collected_campaign_as_parquet(collected, tmp_path):
    r = export_cli(collected, "--format", "parquet", "--out", str(tmp_path / "pq"))
    assert r.returncode == 0, r.stderr
    assert "exported 3 attempts" in r.stdout and "export real" in r.stderr  # the progress bar
    df = pd.read_parquet(tmp_path / "pq" / "data")
    store = Store(collected, "t")
    docs = {d["attempt_key"]: d for d in store.attempts({"campaign": "real"})}
    assert sorted(df.attempt_key) == sorted(docs) and list(df.item_index) == [0, 1, 2]
    for row in df.to_dict("records"):
        doc = docs[row["attempt_key"]]
        assert row["rgb"]["bytes"] == store.image(doc["images"]["pre_rgb"])
        assert row["depth"]["bytes"] == store.image(doc["images"]["pre_depth"])
        assert decode_png(row["rgb"]["bytes"]).shape == (472, 472, 3)
        assert row["success"] == doc["success"] and json.loads(row["params"]) == doc["params"]
        g = doc["grasp"]
        assert list(row["grasp_world"]) == [g["x"], g["y"], g["z"], g["yaw"]]
        assert list(row["camera_k"]) == doc["camera"]["k"] and row["camera_width"] == 472
    store.close()


def test_collected_campaign_as_lerobot(collected, tmp_path):
    r = export_cli(collected, "--format", "lerobot", "--out", str(tmp_path / "lr"), "--quiet")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "lr/meta/info.json").read_text())
    store = Store(collected, "t")
    docs = sorted(store.attempts({"campaign": "real"}), key=lambda d: d["item_index"])
    lengths = [d["trajectory"]["shape"][0] for d in docs]  # one frame per recorded sample (10 Hz by default)
    n = sum(lengths)
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3 and info["total_frames"] == n
    assert info["fps"] == 10 and "observation.images.rgb" not in info["features"]  # no camera frames recorded
    frames = pd.read_parquet(tmp_path / "lr" / "data")
    assert list(frames["index"]) == list(range(n))
    assert list(frames.episode_index) == [e for e, k in enumerate(lengths) for _ in range(k)]
    last = np.cumsum(lengths) - 1
    assert list(frames["next.reward"][last]) == [float(bool(d["success"])) for d in docs]
    store.close()
