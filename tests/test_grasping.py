"""Grasp parameters, seeded sampling, labelling and campaign items: pure logic."""

from __future__ import annotations

import numpy as np
import pytest

from myriad_frontend.campaign import item_seed, load_campaign, make_spec, parse_assignments
from myriad_grasping.episode import motion_seed, top_down
from myriad_grasping.sampling import GraspParams, aim_at, attempt_rng, descent_stop, label, sample_grasp

OBJECTS = ["object_0", "object_1", "object_2"]


class SeenView:
    """What a camera saw, as plain data: two objects' points (object_2 unseen) over a floor at 0.006 m."""

    points = {"object_0": (0.55, 0.05, 0.03), "object_1": (0.65, -0.05, 0.04)}

    def surface_height(self, x: float, y: float) -> float:
        return max(
            [z for px, py, z in self.points.values() if abs(px - x) < 0.03 and abs(py - y) < 0.03] + [0.006]
        )

    def object_points(self, name: str):
        if name not in self.points:
            return np.zeros((0, 3))
        x, y, z = self.points[name]
        gx, gy = np.meshgrid(np.linspace(-0.02, 0.02, 9), np.linspace(-0.01, 0.01, 5))
        return np.column_stack([x + gx.ravel(), y + gy.ravel(), np.full(gx.size, z)])

    def points_near(self, x: float, y: float, radius: float):
        return near(np.vstack([floor(x, y)] + [self.object_points(n) for n in self.points]), x, y, radius)


def floor(x: float, y: float, z: float = 0.006) -> np.ndarray:
    """A 5 mm grid of floor points at height z around (x, y)."""
    g = np.arange(-0.12, 0.1201, 0.005)
    gx, gy = np.meshgrid(x + g, y + g)
    return np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, z)])


def box(x: float, y: float, half: tuple[float, float], top: float) -> np.ndarray:
    """The top face of a box, 2.5 mm grid."""
    gx, gy = np.meshgrid(
        np.arange(x - half[0], x + half[0], 0.0025), np.arange(y - half[1], y + half[1], 0.0025)
    )
    return np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, top)])


def near(points: np.ndarray, x: float, y: float, radius: float) -> np.ndarray:
    return points[np.hypot(points[:, 0] - x, points[:, 1] - y) <= radius]


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


def test_descent_stops_where_the_fingers_meet_what_the_camera_saw():
    """The open fingers' model: over a bare floor the fingertips (1.7 cm below the centre) stop on it; a tall
    neighbour where a fingertip comes down stops the descent on its top; turned 90 degrees the fingers miss it."""
    ground = floor(0.65, 0.0)
    assert descent_stop(ground, 0.65, 0.0, 0.0) == pytest.approx(0.006 + 0.017)
    neighbour = np.vstack([ground, box(0.72, 0.0, (0.01, 0.01), 0.08)])  # 7 cm along x from the centre
    assert descent_stop(neighbour, 0.65, 0.0, 0.0) == pytest.approx(0.08 + 0.017)
    assert descent_stop(neighbour, 0.65, 0.0, np.pi / 2) == pytest.approx(0.006 + 0.017)
    # A target wider than the open fingertips (10 cm apart) stops them on its top; a 9 cm one fits between the
    # slanted finger bases until the fingertips reach the floor.
    wide = np.vstack([ground, box(0.65, 0.0, (0.055, 0.02), 0.06)])
    assert descent_stop(wide, 0.65, 0.0, 0.0) == pytest.approx(0.06 + 0.017)
    fits = np.vstack([ground, box(0.65, 0.0, (0.045, 0.02), 0.06)])
    assert descent_stop(fits, 0.65, 0.0, 0.0) == pytest.approx(0.006 + 0.017)


class BoxesView:
    """A narrow box (the target) with a tall neighbour on its narrow axis, over a floor."""

    def __init__(self):
        self.target = box(0.65, 0.0, (0.015, 0.04), 0.09)  # narrow along x
        self.all = np.vstack([floor(0.65, 0.0), self.target, box(0.72, 0.0, (0.006, 0.006), 0.12)])

    def surface_height(self, x: float, y: float) -> float:
        return float(near(self.all, x, y, 0.004)[:, 2].max())

    def object_points(self, name: str) -> np.ndarray:
        return self.target

    def points_near(self, x: float, y: float, radius: float) -> np.ndarray:
        return near(self.all, x, y, radius)


def test_aim_turns_the_fingers_off_a_neighbour():
    """Across the narrow axis (yaw 0) a fingertip would come down on the tall neighbour 7 cm away, and turned by
    15 degrees still would: the aim turns by 30, the smallest step that clears it."""
    aim = aim_at(BoxesView(), GraspParams(), BoxesView().target)
    assert (aim.x, aim.y) == pytest.approx((0.65, 0.0), abs=2e-3) and aim.z == pytest.approx(0.09 - 0.04)
    assert aim.blocked <= 0.01 and abs(aim.yaw) == pytest.approx(np.pi / 6)
