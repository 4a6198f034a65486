"""Grasp parameters, seeded sampling, labelling and campaign items: pure logic."""

from __future__ import annotations

import pytest

from myriad_frontend.campaign import item_seed, load_campaign, make_spec, parse_assignments
from myriad_grasping.episode import motion_seed, top_down
from myriad_grasping.sampling import GraspParams, attempt_rng, label, sample_grasp

OBJECTS = ["object_0", "object_1", "object_2"]


class SeenView:
    """What a camera saw, as plain data: two objects' points (object_2 unseen) over a floor at 0.006 m."""

    points = {"object_0": (0.55, 0.05, 0.03), "object_1": (0.65, -0.05, 0.04)}

    def surface_height(self, x: float, y: float) -> float:
        return max(
            [z for px, py, z in self.points.values() if abs(px - x) < 0.03 and abs(py - y) < 0.03] + [0.006]
        )

    def object_points(self, name: str):
        import numpy as np

        if name not in self.points:
            return np.zeros((0, 3))
        x, y, z = self.points[name]
        gx, gy = np.meshgrid(np.linspace(-0.02, 0.02, 9), np.linspace(-0.01, 0.01, 5))
        return np.column_stack([x + gx.ravel(), y + gy.ravel(), np.full(gx.size, z)])


def test_params_validation_names_the_field():
    with pytest.raises(ValueError, match=r"item\.object_count: expected an integer 1\.\.20, got 0"):
        GraspParams.from_dict({"object_count": 0}, "item")
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        GraspParams.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match=r"lift_height: expected a finite number in"):
        GraspParams.from_dict({"lift_height": -1})
    assert GraspParams.from_dict({"seed": 4, "strategy": "uniform"}).strategy == "uniform"


def test_sampling_is_seeded_and_strategies_differ():
    p, view = GraspParams(), SeenView()
    a = sample_grasp(attempt_rng(7), p, OBJECTS, (0.5, 0.7), (-0.1, 0.1), view)
    b = sample_grasp(attempt_rng(7), p, OBJECTS, (0.5, 0.7), (-0.1, 0.1), view)
    c = sample_grasp(attempt_rng(8), p, OBJECTS, (0.5, 0.7), (-0.1, 0.1), view)
    assert a == b and a != c
    for grasp, target in (a, c):  # aimed at a seen object, across its narrow (y) axis, by the height rule
        assert target in {"object_0", "object_1"} and abs(abs(grasp.yaw) - 1.5708) < 0.3
        assert grasp.z == max(p.min_grasp_z, view.surface_height(grasp.x, grasp.y) - p.grasp_depth)
    u, target = sample_grasp(
        attempt_rng(7), GraspParams(strategy="uniform"), OBJECTS, (0.5, 0.7), (-0.1, 0.1), view
    )
    assert target == "" and 0.5 <= u.x <= 0.7 and -0.1 <= u.y <= 0.1 and u.z == p.min_grasp_z


def test_label_needs_a_real_rise():
    before = {"a": (0.5, 0.0, 0.03), "b": (0.6, 0.0, 0.03)}
    assert label(before, {"a": (0.5, 0.0, 0.33), "b": (0.6, 0.0, 0.03)}, 0.1) == (
        True,
        "a",
        pytest.approx(0.3),
    )
    assert label(before, {"a": (0.5, 0.0, 0.08), "b": (0.6, 0.0, 0.03)}, 0.1)[0] is False


def test_top_down_quaternion_and_motion_seeds():
    import pybullet as pb

    for yaw in (-1.2, 0.0, 0.7):
        q = pb.getQuaternionFromEuler([0.0, 3.141592653589793, yaw])
        assert top_down(yaw) == pytest.approx(q, abs=1e-9) or top_down(yaw) == pytest.approx(
            [-v for v in q], abs=1e-9
        )
    assert 0 <= motion_seed(2**63 - 1, 3) < 2**63


def test_campaign_items_are_reproducible_and_swept(tmp_path):
    spec = make_spec("c", 5, 6, {"object_count": 3}, {"strategy": ["object", "uniform"]})
    items = list(spec.items())
    assert [i["strategy"] for i in items] == ["object", "uniform"] * 3
    assert [i["seed"] for i in items] == [item_seed(5, k) for k in range(6)]
    assert len({i["seed"] for i in items}) == 6 and items == list(spec.items())
    f = tmp_path / "c.yaml"
    f.write_text("name: x\nseed: 1\nattempts: 2\nparams: {strategy: sideways}\n")
    with pytest.raises(ValueError, match="strategy: expected one of"):
        load_campaign(f)
    f.write_text("name: x\nseeds: 1\n")
    with pytest.raises(ValueError, match=r"unknown fields \['seeds'\]"):
        load_campaign(f)
    assert parse_assignments(["object_count=4", "strategy=uniform"]) == {
        "object_count": 4,
        "strategy": "uniform",
    }


def test_integer_values_become_floats_for_ros_fields():
    p = GraspParams.from_dict({"gripper_force": 30, "lift_height": 1})
    assert isinstance(p.gripper_force, float) and isinstance(p.lift_height, float)
