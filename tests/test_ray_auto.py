"""`myriad collect --ray auto`: with no Ray cluster on this machine, the front end starts one on 127.0.0.1.

Its own module: `--ray auto` joins any Ray cluster running on the machine (Ray finds them by their processes),
so this must not run while test_ray_cluster.py's cluster is up.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path

import psutil
import pytest

# Not imported here: Ray reads RAY_AUTH_MODE when imported, which test_ray_cluster.py sets at its import.
if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed", allow_module_level=True)


def _no_other_cluster() -> None:
    from ray._private.services import find_gcs_addresses

    found = find_gcs_addresses()
    if found:
        reason = f"another Ray cluster runs on this machine ({sorted(found)}); --ray auto would join it"
        pytest.skip(reason)


@pytest.mark.timeout(300)
def test_cli_ray_auto_starts_a_local_cluster_on_loopback(mongo_uri, storage_store, tmp_path):
    """`myriad collect --ray auto` with no cluster to find starts one on 127.0.0.1 and leaves nothing behind."""
    _no_other_cluster()
    uri, store = mongo_uri, storage_store
    ray_tmp = Path(f"/tmp/myrayauto-{secrets.token_hex(3)}")  # short: Ray's socket paths stay < 108 chars
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(ray_tmp), MYRIAD_RUN_DIR=str(tmp_path / "runs"), RAY_DISABLE_USAGE_STATS="1")
    name = f"rayauto{uuid.uuid4().hex[:6]}"
    cmd = ["python", "-m", "myriad_frontend.cli", "collect", "--mongo-uri", uri, "--database", store.db.name,
           "--attempts", "2", "--backends", "1", "--name", name, "--ray", "auto", "--quiet"]  # fmt: skip
    try:
        out = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=240, start_new_session=True
        )
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        assert "done: 2/2 attempts" in out.stdout
        assert len({d["attempt_key"] for d in store.attempts({"campaign": name})}) == 2
        assert {i["state"] for i in store.work_items(name)} == {"done"}
        info = json.loads((tmp_path / "runs" / name / "b0" / "actor.json").read_text())
        assert info["node_ip"] == "127.0.0.1", info
        sessions = list(ray_tmp.glob("ray/session_*/")) + list(ray_tmp.glob("session_*/"))
        assert sessions, f"no Ray session under {ray_tmp}"
        leftovers = [
            p
            for p in psutil.process_iter(["cmdline"])
            if any(str(ray_tmp) in a for a in p.info["cmdline"] or [])
        ]
        assert psutil.wait_procs(leftovers, timeout=30)[1] == []
    finally:
        for p in psutil.process_iter(["cmdline"]):
            if any(str(ray_tmp) in a for a in p.info["cmdline"] or []):
                p.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
