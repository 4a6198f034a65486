"""Trajectory validation and following, gripper stall detection: real physics, no ROS."""

from __future__ import annotations

import numpy as np
import pybullet as pb
import pytest
from conftest import WS

from myriad_control.gripper import command_gripper
from myriad_control.trajectory import Trajectory, TrajectoryError, follow, make_trajectory, samples
from myriad_interfaces.msg import ResultCode
from myriad_sim.spec import load_world
from myriad_sim.world import World

JOINTS = [f"J{i}" for i in range(7)]


@pytest.fixture(scope="module")
def world():
    w = World(load_world(WS / "worlds" / "tray.yaml"), renderer="tiny")
    yield w
    w.close()


def test_rejects_unknown_joints_times_and_limits(world):
    r = world.robot
    q = [list(r.spec.home)]
    with pytest.raises(TrajectoryError, match=r"unknown joints \['J9'\]"):
        make_trajectory(r, JOINTS[:6] + ["J9"], [1.0], q)
    with pytest.raises(TrajectoryError, match="strictly increasing"):
        make_trajectory(r, JOINTS, [1.0, 1.0], q * 2)
    with pytest.raises(TrajectoryError, match=r"J1 = 3\.0000 rad is outside its limits"):
        make_trajectory(r, JOINTS, [1.0], [[0.0, 3.0, 0, 0, 0, 0, 0]])
    with pytest.raises(TrajectoryError, match="exceeds its limit"):
        make_trajectory(r, JOINTS, [1.0], [[0.0] * 7], [[9.0] * 7])


def test_reorders_joint_names(world):
    r = world.robot
    q = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    t = make_trajectory(r, list(reversed(JOINTS)), [1.0], [q[::-1]], None)
    np.testing.assert_allclose(t.positions[0], q)


def test_samples_pass_through_the_points_with_their_velocities():
    """The targets of a motion: at each point its position, in between a cubic with the points' velocities as
    slopes (linear without velocities), before and after the span the end points."""
    rng = np.random.default_rng(3)
    times = np.array([0.0, 0.3, 0.5, 1.2])
    q, v = rng.normal(size=(4, 7)), rng.normal(size=(4, 7))
    cubic, linear = Trajectory(times, q, v), Trajectory(times, q, None)
    assert np.array_equal(samples(cubic, times), q) and np.allclose(samples(linear, times), q, atol=1e-12)
    assert np.array_equal(samples(cubic, [-1.0, 5.0]), q[[0, -1]])
    eps = 1e-7
    slopes = (samples(cubic, times[1:3] + eps) - samples(cubic, times[1:3] - eps)) / (2 * eps)
    assert np.allclose(slopes, v[1:3], atol=1e-4)
    assert np.allclose(samples(linear, [0.4])[0], (q[1] + q[2]) / 2)
    assert np.array_equal(samples(Trajectory(times[:1], q[:1], v[:1]), [0.0, 1.0]), q[[0, 0]])


def test_follow_reaches_goal_within_tolerance(world):
    world.build()
    r = world.robot
    goal = np.array([0.4, 0.2, 0.0, -1.2, 0.0, 1.6, 0.3])
    traj = make_trajectory(r, JOINTS, [2.0], [goal])
    out = follow(r, traj, world.spec.timestep, world.step, goal_tolerance=0.01)
    assert out.error_code == ResultCode.SUCCESS, out.message
    assert np.max(np.abs(r.joint_positions() - goal)) <= 0.01
    assert out.max_tracking_error < 0.25


def test_unreachable_goal_tolerance_reported(world):
    world.build()
    r = world.robot
    # Pressing the gripper into the table: the arm cannot reach the goal and says so.
    goal = np.array([0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    traj = make_trajectory(r, JOINTS, [1.5], [goal])
    out = follow(
        r, traj, world.spec.timestep, world.step, path_tolerance=10.0, goal_tolerance=0.001, settle_time=0.2
    )
    assert out.error_code == ResultCode.GOAL_TOLERANCE_VIOLATED and "not reached" in out.message


def test_gripper_closes_freely_and_stalls_on_object(world):
    world.build()
    r = world.robot
    free = command_gripper(r, 0.0, 10.0, world.spec.timestep, world.step)
    assert free.reached_goal and not free.stalled and free.position < 0.05
    # A fixed 3 cm box between the fingertips of the open gripper: the fingers stop on it.
    world.build()
    c = world.client
    tips = [np.array(pb.getLinkState(r.body, j, physicsClientId=c)[4]) for j in r.tips]
    box = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[0.015] * 3, physicsClientId=c)
    pb.createMultiBody(0.0, box, -1, ((tips[0] + tips[1]) / 2).tolist(), physicsClientId=c)
    held = command_gripper(r, 0.0, 10.0, world.spec.timestep, world.step)
    assert held.stalled and not held.reached_goal, held
    assert 0.1 < held.position < 0.9, held
    with pytest.raises(ValueError, match="position"):
        command_gripper(r, 1.5, 10.0, world.spec.timestep, world.step)


def test_gripper_stall_on_a_held_object_is_seen_by_where_the_fingers_are(world):
    """A free 200 g box caught between the fingertips: squeezed, the fingers jitter without getting anywhere. The
    stall shows within 0.25 s (their speed stayed above a speed threshold for 0.73 s), and the box stays held."""
    world.build()
    r, c = world.robot, world.client
    tips = [np.array(pb.getLinkState(r.body, j, physicsClientId=c)[4]) for j in r.tips]
    shape = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[0.015] * 3, physicsClientId=c)
    box = pb.createMultiBody(0.2, shape, -1, ((tips[0] + tips[1]) / 2).tolist(), physicsClientId=c)
    steps = []
    held = command_gripper(r, 0.0, 20.0, world.spec.timestep, lambda n: steps.append(n) or world.step(n))
    assert held.stalled and not held.reached_goal and 0.1 < held.position < 0.9, held
    assert sum(steps) * world.spec.timestep <= 0.25, sum(steps)
    z = pb.getBasePositionAndOrientation(box, physicsClientId=c)[0][2]
    world.step(240)
    assert abs(pb.getBasePositionAndOrientation(box, physicsClientId=c)[0][2] - z) < 0.005


def test_result_codes_are_one_table_without_clashes():
    """Every error_code (planning, execution, plan-and-execute) is a named ResultCode; no value means two things."""
    codes = {n: getattr(ResultCode, n) for n in dir(ResultCode) if n.isupper() and not n.startswith("_")}
    assert {"SUCCESS", "EXECUTION_FAILED", "CANCELLED", "NO_IK_SOLUTION", "GOAL_TOLERANCE_VIOLATED"} <= set(
        codes
    )
    assert len(set(codes.values())) == len(codes), codes
    assert codes["SUCCESS"] == 1  # as MoveIt's, for planning and execution alike
