"""Grasp execution in real physics: the descent is a guarded move that may touch the tray and objects, the
`object` strategy aims across an object's narrow axis, and one grasp-height rule for every path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from myriad import Experiment
from myriad.local import LocalGraspBackend
from myriad_grasping.episode import execute_grasp, top_down
from myriad_grasping.sampling import Grasp, GraspParams, narrow_axis

WS = Path(__file__).resolve().parents[1]


@pytest.fixture
def exp():
    with Experiment(world=WS / "worlds" / "tray.yaml", renderer="tiny", seed=5) as e:
        e.reset(object_count=0)
        yield e


def write_box_urdf(
    path: Path, size: tuple[float, float, float], mass: float = 0.05, friction: float | None = None
) -> Path:
    sx, sy, sz = size
    geometry = f'<geometry><box size="{sx} {sy} {sz}"/></geometry>'
    contact = "" if friction is None else f'<contact><lateral_friction value="{friction}"/></contact>'
    path.write_text(
        f"""<robot name="bar"><link name="base">
  <inertial><mass value="{mass}"/><inertia ixx="1e-5" iyy="1e-5" izz="1e-5" ixy="0" ixz="0" iyz="0"/></inertial>
  <visual>{geometry}</visual><collision>{geometry}</collision>{contact}
</link></robot>"""
    )
    return path


def angle_between_axes(a: float, b: float) -> float:
    """Smallest angle between two undirected horizontal axes (rad, 0..pi/2)."""
    d = (a - b) % math.pi
    return min(d, math.pi - d)


def test_grasp_at_the_tray_wall_descends_to_contact_and_closes(exp):
    """The fingers land on the tray's wall: the planner allows the contact, the guarded descent stops on it and
    the gripper closes (before, the planner refused the descent and no grasp ran)."""
    backend = LocalGraspBackend(exp.backend)
    grasp = Grasp(0.56, 0.0, 0.04, 0.0)  # fingers along x: the one nearer the robot comes down on the wall
    params = GraspParams()
    outcome, executed, moves = execute_grasp(backend, grasp, params, seed=1)
    assert moves["descend"]["ok"] and moves["descend"]["contact"], moves
    assert executed and "opening" in moves["close"] and outcome != "refused_before_descent", (outcome, moves)
    after_lift = exp.backend.world.robot.tool_pose()[0]
    # The same straight line with every gripper contact forbidden is refused on the tray: the ACM matters.
    exp.reset()
    exp.move_to(((0.56, 0.0, 0.04 + params.approach_height), top_down(0.0)))
    q = exp.backend.world.robot.joint_positions()
    planner = exp.backend.planner()
    strict = planner.plan_cartesian(q, (0.56, 0.0, 0.04), top_down(0.0))
    allowed = planner.plan_cartesian(q, (0.56, 0.0, 0.04), top_down(0.0), gripper_contact=True)
    assert not strict.success and "tray" in strict.message and allowed.success
    assert after_lift[2] > grasp.z + params.lift_height - 0.01  # and it lifted afterwards


def test_yaw_rule_puts_the_fingers_across_a_long_thin_object(exp, tmp_path):
    bar = write_box_urdf(tmp_path / "bar.urdf", (0.12, 0.025, 0.03))
    heading = 0.6
    exp.load_object(bar, (0.66, 0.0, 0.02, 0.0, 0.0, heading), name="bar")
    exp.backend.world.step(120)
    grasp = exp.sample_grasp(strategy="object", position_noise=0.0, yaw_noise=0.0)
    # The fingers close along the grasp's yaw: across the bar is perpendicular to its long axis.
    assert angle_between_axes(grasp.yaw, heading + math.pi / 2) < 0.1, grasp
    assert math.hypot(grasp.x - 0.66, grasp.y) < 0.01, grasp
    result = exp.grasp(grasp.x, grasp.y, grasp.yaw, grasp.z)
    assert result.grasp_executed and result.success and result.lifted_object == "bar", result.outcome


def test_fingers_closed_on_an_object_that_slips_is_a_failure(exp, tmp_path):
    """A heavy, slippery bar: the fingers close on it (opening well above "missed") but it stays in the tray, so
    the attempt is labelled a failure, slipped during the lift, and nothing is named as lifted."""
    bar = write_box_urdf(tmp_path / "slippery.urdf", (0.12, 0.03, 0.04), mass=0.3, friction=0.02)
    exp.load_object(bar, (0.66, 0.0, 0.035, 0.0, 0.0, 0.0), name="bar")
    exp.backend.world.step(120)
    grasp = exp.sample_grasp(strategy="object", position_noise=0.0, yaw_noise=0.0)
    result = exp.grasp(grasp.x, grasp.y, grasp.yaw, grasp.z)
    assert result.grasp_executed and result.moves["close"]["opening"] > 0.2, result.moves
    assert result.outcome == "slipped_during_lift" and result.success is False, result.outcome
    assert result.lifted_object == "" and result.lift_height < 0.01, result


def test_narrow_axis_of_points():
    rng = np.random.default_rng(0)
    for heading in (-1.2, 0.0, 0.4, 1.5):
        along, across = rng.uniform(-0.06, 0.06, 500), rng.uniform(-0.01, 0.01, 500)
        c, s = math.cos(heading), math.sin(heading)
        pts = np.column_stack([0.7 + along * c - across * s, 0.1 + along * s + across * c])
        x, y, yaw, width = narrow_axis(pts)
        assert abs(x - 0.7) < 0.005 and abs(y - 0.1) < 0.005 and 0.018 < width <= 0.02 * math.sqrt(2)
        assert angle_between_axes(yaw, heading + math.pi / 2) < 0.05 and -math.pi / 2 < yaw <= math.pi / 2


def test_experiment_grasp_is_the_grasp_samplers_attempt_motion_for_motion(tmp_path):
    """Experiment.grasp plans each motion with the attempt's motion seeds, as the grasp sampler does (it used to
    plan every motion with the experiment's seed), and so ends in the same state bit for bit."""
    bar = write_box_urdf(tmp_path / "bar.urdf", (0.12, 0.025, 0.03))
    runs = []
    for via_experiment in (True, False):
        with Experiment(world=WS / "worlds" / "tray.yaml", renderer="tiny", seed=5) as e:
            e.reset(object_count=0)
            e.load_object(bar, (0.66, 0.0, 0.02, 0.0, 0.0, 0.6), name="bar")
            e.backend.world.step(120)
            planner, seeds = e.backend.planner(), []

            def plan(*a, seeds=seeds, real=planner.plan, **k):
                seeds.append(k["seed"])
                return real(*a, **k)

            planner.plan = plan
            grasp = Grasp(0.66, 0.0, 0.01, 0.6 + math.pi / 2)
            if via_experiment:
                e.grasp(grasp.x, grasp.y, grasp.yaw, grasp.z)
            else:
                execute_grasp(LocalGraspBackend(e.backend), grasp, GraspParams(), seed=5)
            runs.append((seeds, e.backend.world.robot.joint_positions().tolist()))
    assert len(runs[0][0]) >= 3 and len(set(runs[0][0])) == len(runs[0][0])
    assert runs[0] == runs[1]
