"""Hardening: grasp parameters and campaign sizes are checked before anything is stored or started."""

from __future__ import annotations

import subprocess
import tracemalloc

import pytest
from conftest import collect_command

from myriad_frontend.campaign import MAX_ATTEMPTS, make_spec
from myriad_grasping.sampling import GraspParams
from myriad_planning.config import PLANNERS
from myriad_storage.store import Store


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("planner", "nonsense", "one of " + ", ".join(PLANNERS)),
        ("position_noise", float("nan"), "finite number"),
        ("grasp_depth", float("nan"), "finite number"),
        ("grasp_depth", float("inf"), "finite number"),
        ("gripper_force", 1e9, "finite number in"),
        ("approach_height", "high", "finite number"),
        ("lift_height", True, "finite number"),
        ("object_count", 3.0, "integer 1..20"),
        ("strategy", ["object"], "one of"),
    ],
)
def test_every_grasp_parameter_is_validated(field, value, expected):
    with pytest.raises(ValueError, match=rf"p\.{field}: expected .*{expected}") as err:
        GraspParams.from_dict({field: value}, "p")
    assert repr(value) in str(err.value)
    assert GraspParams.from_dict({"planner": PLANNERS[-1], "grasp_depth": 0}).grasp_depth == 0.0


@pytest.mark.parametrize("pair", ["planner=nonsense", "position_noise=.nan", "grasp_depth=.nan"])
def test_cli_refuses_bad_parameters_before_creating_a_campaign(mongo_uri, pair):
    out = subprocess.run(
        collect_command(mongo_uri, "--attempts", "2", "--name", "refused", "--set", pair),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    field = pair.partition("=")[0]
    assert out.returncode == 2, out.stderr
    assert f"params.{field}: expected" in out.stderr and "Traceback" not in out.stderr
    assert Store(mongo_uri, "t").campaign("refused") is None


def test_sweep_values_and_campaign_bounds_are_checked_without_building_items():
    spec = make_spec("big", 1, MAX_ATTEMPTS, {}, {"grasp_depth": [0.02, 0.04]})  # instant: nothing built
    assert spec.attempts == MAX_ATTEMPTS
    with pytest.raises(ValueError, match=r"sweep\.grasp_depth: expected a finite number"):
        make_spec("c", 1, 4, {}, {"grasp_depth": [0.02, float("nan")]})
    with pytest.raises(ValueError, match=r"attempts: expected an integer 1\.\.1,000,000"):
        make_spec("c", 1, 10**9, {})
    with pytest.raises(ValueError, match=r"seed: expected an integer 0\.\.2\*\*63-1"):
        make_spec("c", 10**20, 1, {})
    with pytest.raises(ValueError, match=r"'seed' is not a grasp parameter; set the campaign seed"):
        make_spec("c", 1, 1, {"seed": 5})
    # Each value valid on its own, one combination not: 'learned' with no model version.
    sweep = {"strategy": ["object", "learned"], "model_version": ["v1", ""]}
    with pytest.raises(ValueError, match=r"sweep\.model_version: strategy 'learned' needs a model version"):
        make_spec("c", 1, 4, {"model_version": "v1"}, sweep)
    assert make_spec("c", 1, 4, {}, {"strategy": ["object", "learned"], "model_version": ["v1", "v2"]})


def test_campaign_items_are_made_and_stored_in_batches(storage_local_server):
    """Peak memory of creating a campaign does not grow with its size; resume semantics are unchanged."""
    storage_store = Store(storage_local_server.uri, "t")  # a server in its own process: not traced below

    def peak(name: str, attempts: int) -> int:
        spec = make_spec(name, 3, attempts, {"object_count": 2}, {"strategy": ["object", "uniform"]})
        tracemalloc.start()
        storage_store.create_campaign(spec.name, spec.items, template=spec.params, seed=spec.seed)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert storage_store.progress(name)["pending"] == attempts
        return size

    small, large = peak("small", 1000), peak("large", 5000)
    assert large < 2 * small, (small, large)  # a list of all items would make it ≈ 5×
    spec = make_spec("large", 3, 5000, {"object_count": 2}, {"strategy": ["object", "uniform"]})
    assert storage_store.create_campaign("large", spec.items)["target"] == 5000  # same items: resumed
    items = list(spec.items())
    assert storage_store.create_campaign("large", items)["target"] == 5000  # a list fingerprints the same
    with pytest.raises(ValueError, match="already exists with different items"):
        storage_store.create_campaign("large", make_spec("large", 4, 5000, {}).items)
