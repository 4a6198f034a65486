"""The learning loop: training on stored attempts, versioned models, the `learned` strategy in a real back end.

Real database servers, real back-end processes and physics; PyTorch on the CPU (CI installs it: there a missing
torch fails these tests instead of skipping them).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import collect_command

pytest.importorskip("torch", reason="the optional learning loop: pip install -r requirements-learn.txt")

from myriad_grasping.sampling import GraspParams, attempt_rng, grasp_height  # noqa: E402
from myriad_learning.data import load_examples, validation_mask  # noqa: E402
from myriad_learning.policy import learned_grasp  # noqa: E402
from myriad_learning.registry import BUCKET, ModelRegistry  # noqa: E402
from myriad_learning.train import TrainConfig, fit, train_and_store  # noqa: E402
from myriad_sim.camera import DepthView  # noqa: E402
from myriad_sim.frames import camera_record  # noqa: E402
from myriad_storage.store import Store  # noqa: E402


def myriad(uri: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "myriad_frontend.cli", *args, "--mongo-uri", uri, "--database", "t"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def collect(uri: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(collect_command(uri, *args), capture_output=True, text=True, timeout=300)


# -- a learnable synthetic label on a real capture, through the database --------------------------------------


def synthetic_campaign(store: Store, capture: dict, n: int, name: str, label=None) -> None:
    """`n` attempts on one real capture, grasps uniform in the tray; label (default): the grasp's centre is on
    an object (seen more than 1 cm above the tray floor): learnable from the image."""
    frame, camera = capture["frame"], capture["camera"]
    view = DepthView(camera, frame.depth, frame.segmentation, {}, frame.rgb)
    params, rng = GraspParams(), np.random.default_rng(5)
    store.create_campaign(name, [{"seed": 1000 + i} for i in range(n)])
    objects = [(body, pos) for body, pos in capture["objects"].values()]
    for i in range(n):
        if i % 2:  # half aimed near an object: both labels common
            _, (ox, oy, _) = objects[i % len(objects)]
            x, y = ox + rng.normal(0, 0.02), oy + rng.normal(0, 0.02)
        else:
            x, y = rng.uniform(0.45, 0.85), rng.uniform(-0.2, 0.2)
        surface = view.surface_height(x, y)
        z, yaw = grasp_height(params, surface), float(rng.uniform(-math.pi / 2, math.pi / 2))
        success = bool(surface > 0.02) if label is None else label
        key = f"{name}/{i:06d}"
        record = {"attempt_key": f"{key}#0", "campaign": name, "item_id": key, "item_index": i, "seed": 1000 + i,
                  "success": success, "grasp": {"x": x, "y": y, "z": z, "yaw": yaw},
                  "camera": camera_record(camera)}  # fmt: skip
        images = {k: capture["images"][k] for k in ("pre_rgb", "pre_depth")}
        store.store_attempt(record, images)


FAST = TrainConfig(epochs=20, batch=32, validation=0.25, seed=3)


def test_a_learnable_label_is_learned_and_the_model_stored(storage_store, world_capture):
    synthetic_campaign(storage_store, world_capture, 64, "synthetic")
    version, result = train_and_store(storage_store, ["synthetic"], FAST)
    val = result.metrics["validation"]
    assert version == "v1" and result.validation_n + result.train_n == 64
    assert 0 < val["successes"] < val["n"]
    assert val["auc"] > 0.8, val  # far better than chance (0.5)
    assert {"accuracy", "majority", "brier", "ece"} <= val.keys()
    doc = ModelRegistry(storage_store).record(version)
    assert doc["campaigns"] == ["synthetic"] and doc["attempts"] == 64 and doc["metrics"]["validation"] == val
    assert doc["train"] == result.train_n and doc["bytes"] > 1000 and doc["config"]["epochs"] == 20
    # Split by seed: the validation attempts are those whose seeds the rule holds out, whatever their order.
    ex = load_examples(storage_store, ["synthetic"])
    assert int(validation_mask(ex.seeds, 0.25).sum()) == result.validation_n
    assert np.array_equal(validation_mask(ex.seeds[::-1], 0.25), validation_mask(ex.seeds, 0.25)[::-1])
    # A second training is the next version; the same data, config and seed give bit-identical weights.
    version2, _ = train_and_store(storage_store, ["synthetic"], FAST)
    registry = ModelRegistry(storage_store)
    assert version2 == "v2"
    assert registry.record("v1")["sha256"] == registry.record("v2")["sha256"]


def test_deployed_model_computes_what_the_trained_network_does():
    """The back ends' numpy forward pass gives the PyTorch network's probabilities, also after storage."""
    import torch

    from myriad_learning.inference import GraspModel
    from myriad_learning.model import GraspNet, deterministic

    deterministic(11)
    net = GraspNet().eval()
    rng = np.random.default_rng(2)
    images = rng.normal(0, 0.5, (16, 4, 32, 32)).astype(np.float32)
    vectors = rng.normal(0, 1, (16, 4)).astype(np.float32)
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(images), torch.from_numpy(vectors))).numpy()
    model = GraspModel.from_bytes(net.deployed().to_bytes())
    assert np.allclose(model.scores(images, vectors), expected, atol=1e-5)
    assert np.array_equal(model.scores(images, vectors), model.scores(images, vectors))


def test_same_model_and_seed_same_grasp(storage_store, world_capture):
    synthetic_campaign(storage_store, world_capture, 48, "det")
    version, _ = train_and_store(storage_store, ["det"], TrainConfig(epochs=3, validation=0.25))
    frame, camera = world_capture["frame"], world_capture["camera"]
    bodies = {n: body for n, (body, _pos) in world_capture["objects"].items()}
    params = GraspParams(strategy="learned", model_version=version)

    def grasp(seed: int, registry: ModelRegistry):
        view = DepthView(camera, frame.depth, frame.segmentation, bodies, frame.rgb)
        model = registry.load(version)
        return learned_grasp(attempt_rng(seed), params, list(bodies), (0.45, 0.85), (-0.2, 0.2), view, model)

    a, b = grasp(4, ModelRegistry(storage_store)), grasp(4, ModelRegistry(storage_store))  # loaded twice
    assert a == b
    assert grasp(5, ModelRegistry(storage_store))[0] != a[0]
    g = a[0]
    assert 0.45 <= g.x <= 0.85 and -0.2 <= g.y <= 0.2 and -math.pi / 2 <= g.yaw < math.pi / 2
    view = DepthView(camera, frame.depth, frame.segmentation, bodies, frame.rgb)
    assert g.z == grasp_height(params, view.surface_height(g.x, g.y))  # the grasp-height rule
    # The Experiment API samples the same strategy from the experiment's database.
    from myriad import Experiment

    db = storage_store.db.name
    with Experiment(
        renderer="tiny", seed=4, object_count=3, database_uri=storage_store.uri, database=db
    ) as e:
        first = e.sample_grasp(strategy="learned", model_version=version)
        assert first == e.sample_grasp(strategy="learned", model_version=version)
    # With no object seen (none named), the candidates are uniform in the tray: a grasp all the same.
    blind = learned_grasp(
        attempt_rng(4),
        params,
        [],
        (0.45, 0.85),
        (-0.2, 0.2),
        view,
        ModelRegistry(storage_store).load(version),
    )
    assert blind[1] == "" and 0.45 <= blind[0].x <= 0.85


def test_training_refuses_bad_input(storage_store, world_capture):
    with pytest.raises(ValueError, match=r"no campaign named 'nope'"):
        load_examples(storage_store, ["nope"])
    synthetic_campaign(storage_store, world_capture, 6, "few")
    with pytest.raises(ValueError, match=r"campaign few: 6 labelled attempts .*training needs at least 20"):
        load_examples(storage_store, ["few"])
    synthetic_campaign(storage_store, world_capture, 24, "failures", label=False)
    with pytest.raises(ValueError, match=r"all 24 labelled attempts are failures; training needs both"):
        load_examples(storage_store, ["failures"])
    with pytest.raises(ValueError, match=r"--epochs: expected 1..10000, got 0"):
        TrainConfig(epochs=0).check()
    with pytest.raises(ValueError, match=r"--validation: expected a fraction in \(0, 1\), got 1.5"):
        fit(load_examples(storage_store, ["few"], min_attempts=2), TrainConfig(validation=1.5))


def test_unknown_and_corrupt_models_are_clear_errors(storage_store, world_capture):
    registry = ModelRegistry(storage_store)
    with pytest.raises(ValueError, match=r"model_version 'v7': no such model in database '.*'; known: none"):
        registry.load("v7")
    with pytest.raises(ValueError, match=r"model_version: expected a version like v1"):
        registry.load("latest")
    garbage = registry.save(b"not a model", {})
    with pytest.raises(ValueError, match=rf"model {garbage}: not a loadable grasp model"):
        registry.load(garbage)
    synthetic_campaign(storage_store, world_capture, 24, "c")
    good, _ = train_and_store(storage_store, ["c"], TrainConfig(epochs=1))
    doc = registry.record(good)
    import gridfs

    bucket = gridfs.GridFSBucket(storage_store.db, BUCKET)
    data = bucket.open_download_stream(doc["file_id"]).read()
    bucket.delete(doc["file_id"])
    bucket.upload_from_stream_with_id(doc["file_id"], "model.npz", data[:-10] + b"0123456789")
    with pytest.raises(ValueError, match=rf"model {good}: its file is corrupt \(sha256 differs"):
        ModelRegistry(storage_store).load(good)


# -- the real pipeline: collect, train, collect with the learned strategy ------------------------------------


@pytest.fixture(scope="module")
def tiny_model(module_db):
    """`myriad loop` at its smallest: 6 random (`object`) attempts collected by back ends, a model trained on them
    by `myriad train`'s code, 2 attempts with it on held-out seeds (campaign seed 8). (uri, version, output)."""
    out = myriad(module_db, "loop", "--name", "tiny", "--random-attempts", "6", "--random-strategy", "object",
                 "--seed", "7", "--learned-attempts", "2", "--compare", "--min-attempts", "4", "--epochs", "2",
                 "--validation", "0.5", "--quiet", timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    version = re.search(r"^model (v\d+): 6 labelled attempts", out.stdout, re.M).group(1)
    return module_db, version, out.stdout


def test_loop_trains_and_compares(tiny_model):
    _, version, stdout = tiny_model
    assert "validation: accuracy" in stdout and "ROC AUC" in stdout and "ECE" in stdout
    assert re.search(r"^tiny-random +object +\d+/6 +=", stdout, re.M), stdout
    assert re.search(rf"^tiny-learned-{version} +learned {version} +\d+/\d+ +=.*\]   2$", stdout, re.M), (
        stdout
    )


@pytest.mark.timeout(900)
def test_learned_strategy_in_a_back_end_records_its_model_and_repeats(tiny_model):
    uri, version, _ = tiny_model
    name, again = f"tiny-learned-{version}", "learned-again"
    sets = (
        "--set",
        "strategy=learned",
        "--set",
        f"model_version={version}",
        "--attempts",
        "2",
        "--seed",
        "8",
    )
    out = collect(uri, *sets, "--name", again, "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    store = Store(uri, "t")
    docs = {n: sorted(store.attempts({"campaign": n}), key=lambda d: d["item_index"]) for n in (name, again)}
    assert [len(v) for v in docs.values()] == [2, 2]
    for d in docs[name]:
        assert d["params"]["strategy"] == "learned" and d["params"]["model_version"] == version
        assert d["extra"]["outcome"]
    # The dashboard's success per strategy and model version.
    by = store.progress(name, outcomes=True)["strategies"]
    assert list(by) == [f"learned {version}"] and by[f"learned {version}"]["attempts"] == 2
    # Same model, same seeds: the same grasps (deterministic inference), whichever run made them.
    assert [d["grasp"] for d in docs[name]] == [d["grasp"] for d in docs[again]]


def test_collect_refuses_a_learned_campaign_without_a_usable_model(tiny_model):
    uri, _, _ = tiny_model
    out = collect(uri, "--set", "strategy=learned", "--set", "model_version=v99", "--attempts", "1")
    assert (
        out.returncode == 2 and "model_version 'v99': no such model in database 't'; known: v" in out.stderr
    )
    out = collect(uri, "--set", "strategy=learned", "--attempts", "1")
    assert out.returncode == 2 and "model_version: strategy 'learned' needs a model version" in out.stderr


def test_train_command_errors(tiny_model):
    uri, version, _ = tiny_model
    out = myriad(uri, "train", "tiny-random")
    assert out.returncode == 2 and "6 labelled attempts" in out.stderr and "at least 20" in out.stderr
    out = myriad(uri, "train", "missing-campaign")
    assert out.returncode == 2 and "no campaign named 'missing-campaign'" in out.stderr
    # Without PyTorch: one line naming the install command (torch made unimportable in that process).
    code = ("import sys; sys.modules['torch'] = None; from myriad_frontend.cli import main; "
            f"sys.exit(main(['train', 'tiny-random', '--mongo-uri', {uri!r}, '--database', 't']))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "myriad: training a grasp model needs PyTorch, which is not installed: pip install -r requirements-learn.txt "
        "(or scripts/setup.sh --learn)"
    )
    # The back ends need no PyTorch: a stored model loads and scores without it.
    code = ("import sys; sys.modules['torch'] = None; import numpy as np; "
            "from myriad_learning.registry import ModelRegistry; from myriad_storage.store import Store; "
            f"m = ModelRegistry(Store({uri!r}, 't')).load({version!r}); "
            "print(m.scores(np.zeros((2, 4, 32, 32), np.float32), np.zeros((2, 4), np.float32)).shape)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "(2,)", out.stderr
