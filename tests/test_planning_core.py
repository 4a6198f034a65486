"""Planning core (kinematics, scene, OMPL planner, timing, config) with real OMPL and PyBullet."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pybullet as pb
import pytest

from myriad_planning.config import ConfigError, load_config
from myriad_planning.kinematics import CONVERGED
from myriad_planning.planner import INVALID_GOAL, NO_IK_SOLUTION, SUCCESS, Planner
from myriad_planning.scene import ObjectState, Scene, camera_pose
from myriad_planning.timing import densify, robot_trajectory
from myriad_sim.spec import load_world
from myriad_sim.world import World

ROOT = Path(__file__).resolve().parents[1]
DOWN = pb.getQuaternionFromEuler([0.0, math.pi, 0.0])
WALL_POS = (0.6, 0.0, 0.25)


@pytest.fixture(scope="module")
def spec():
    return load_world(ROOT / "worlds" / "tray.yaml")


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "config" / "planning.yaml")


@pytest.fixture(scope="module")
def wall(tmp_path_factory) -> str:
    """A 0.4 x 0.02 x 0.5 m box standing across the tray, between its left and right halves."""
    path = tmp_path_factory.mktemp("models") / "wall.urdf"
    box = '<geometry><box size="0.4 0.02 0.5"/></geometry>'
    path.write_text(
        f'<robot name="wall"><link name="base"><collision>{box}</collision><visual>{box}</visual></link></robot>'
    )
    return str(path)


@pytest.fixture(scope="module")
def sim(spec, wall):
    """An independent world holding the wall: the ground truth the plans are judged against."""
    world = World(spec, renderer="tiny")
    world.spawn("wall", wall, WALL_POS, fixed=True, check_overlap=False)
    yield world
    world.close()


@pytest.fixture(scope="module")
def planner(spec, config):
    scene = Scene(spec, config)
    yield Planner(scene, config)
    scene.world.close()


@pytest.fixture(scope="module")
def ends(planner):
    """Joint configurations with the gripper pointing down over the left and right halves of the tray."""
    kin = planner.scene.kinematics
    return kin.ik([0.6, 0.2, 0.2], DOWN), kin.ik([0.6, -0.2, 0.2], DOWN)


def test_ik_converges_on_grasp_poses_over_the_tray(planner):
    """Each IK call's null space pulls toward its last answer, so calls again from it converge to within 0.1 mm
    (before, toward the first seed: 1-2 mm left at the tool centre that no further call removed)."""
    kin, rng = planner.scene.kinematics, np.random.default_rng(0)
    for _ in range(20):
        position = (rng.uniform(0.6, 0.72), rng.uniform(-0.08, 0.08), rng.uniform(0.03, 0.2))
        orientation = pb.getQuaternionFromEuler([0.0, math.pi, rng.uniform(-1.5, 1.5)])
        q = kin.ik(position, orientation, seed=kin.home)
        assert q is not None
        dp, da = kin.pose_error(q, position, orientation)
        assert dp < CONVERGED and da < 1e-3, (position, dp, da)  # the tolerances: 2 mm and 0.02 rad


def contacts(world: World, q) -> list[str]:
    """Bodies the robot at q touches in `world` (the robot base resting on the table excepted)."""
    world.robot.reset_joints(q)
    hits = []
    for name, e in world.entities.items():
        if name == "robot":
            continue
        pts = pb.getClosestPoints(world.robot.body, e.body, 0.0, physicsClientId=world.client)
        if any(not (name == "table" and p[3] == -1) for p in pts):
            hits.append(name)
    return hits


def assert_free_trajectory(result, spec, config, world: World) -> None:
    traj = robot_trajectory(result.path, spec.robot, config)
    states = densify(traj.positions, 0.01)
    lo, hi = world.robot.lower, world.robot.upper
    assert np.all(states >= lo - 1e-9) and np.all(states <= hi + 1e-9)
    bad = [(k, c) for k, q in enumerate(states) if (c := contacts(world, q))]
    assert not bad, f"{len(bad)} of {len(states)} states collide, first {bad[0]}"
    vmax = np.asarray(spec.robot.velocity_limits) * config.velocity_scaling
    assert np.all(np.abs(traj.velocities) <= vmax * 1.05)
    assert np.allclose(traj.positions[-1], result.path[-1]) and np.allclose(traj.velocities[-1], 0.0)


def with_wall(planner: Planner, wall: str) -> None:
    planner.scene.clear_voxels()
    planner.scene.sync([ObjectState("wall", wall, WALL_POS)])


def test_plan_around_wall_is_collision_free(planner, spec, config, sim, wall, ends):
    with_wall(planner, wall)
    qa, qb = ends
    assert contacts(sim, qa) == [] and contacts(sim, qb) == []
    assert any(contacts(sim, qa + s * (qb - qa)) for s in np.linspace(0, 1, 30)), (
        "the wall must block the direct way"
    )
    result = planner.plan_joints(qa, qb, seed=3)
    assert result.code == SUCCESS, result.message
    assert np.allclose(result.path[0], qa) and np.allclose(result.path[-1], qb)
    assert_free_trajectory(result, spec, config, sim)


def test_same_seed_same_plan(planner, wall, ends):
    with_wall(planner, wall)
    first, again = (planner.plan_joints(*ends, seed=7) for _ in range(2))
    other = planner.plan_joints(*ends, seed=8)
    assert first.success and again.success and other.success
    assert np.array_equal(first.path, again.path)
    assert not np.array_equal(first.path, other.path)


def test_a_renewed_planning_world_plans_the_same(planner, wall, ends, monkeypatch):
    """Past RENEW_LOADS objects loaded, sync makes the planning world anew (PyBullet keeps part of every removed
    body: the scene grew ~0.4 MB per attempt): the same objects are back, and the same seed plans the same path."""
    import myriad_planning.scene as scene_module

    with_wall(planner, wall)
    before = planner.plan_joints(*ends, seed=7)
    old = planner.scene.world
    monkeypatch.setattr(scene_module, "RENEW_LOADS", planner.scene.loads)
    with_wall(planner, wall)
    assert planner.scene.world is not old and planner.scene.loads == 1
    assert planner.robot is planner.scene.robot, "the planner still holds the old world's robot"
    assert planner.scene.world.object_names() == ["wall"]
    after = planner.plan_joints(*ends, seed=7)
    assert before.success and after.success and np.array_equal(before.path, after.path)


def test_unreachable_and_colliding_goals_fail_fast(planner, spec, wall, ends, monkeypatch):
    """Goals out of reach, in collision or malformed are refused before any search (OMPL never runs)."""
    with_wall(planner, wall)
    home = spec.robot.home
    monkeypatch.setattr(
        planner, "_solve", lambda *a, **k: pytest.fail("OMPL searched for a goal refused up front")
    )
    assert planner.plan_pose(home, [1.6, 0.0, 0.2], DOWN).code == NO_IK_SOLUTION
    assert planner.plan_pose(home, [0.6, 0.0, 0.3], DOWN).code == INVALID_GOAL  # the gripper inside the wall
    inside = planner.scene.kinematics.ik([0.6, 0.0, 0.3], DOWN)
    assert inside is not None and planner.plan_joints(home, inside).code == INVALID_GOAL
    assert planner.plan_joints(home, [9.0] * 7).code == INVALID_GOAL
    assert planner.plan("nowhere", home).code == INVALID_GOAL


def test_malformed_requests_are_refused_naming_the_field(planner, spec, monkeypatch):
    """Non-finite or wrongly sized numbers give INVALID_GOAL (goal) or a refused start, named; OMPL never runs.
    (NaN poses, which would hang PyBullet's IK here, are tested on the node: test_planning_node.py.)"""
    monkeypatch.setattr(
        planner, "_solve", lambda *a, **k: pytest.fail("OMPL searched for a goal refused up front")
    )
    home, nan = list(spec.robot.home), float("nan")
    for goal_type in ("pose", "cartesian", "cartesian_contact"):
        result = planner.plan(goal_type, home, pose=([0.5, 0.0], DOWN))
        assert result.code == INVALID_GOAL and result.message.startswith("pose goal:"), result
    joint = planner.plan("joints", home, [nan] + home[1:])
    assert joint.code == INVALID_GOAL and "finite" in joint.message
    start = planner.plan("joints", [float("inf")] + home[1:], home)
    assert not start.success and start.message.startswith("start:"), start


def test_self_collision_agrees_with_a_distance_query_per_link_pair(planner, spec):
    """The bounding-box pre-filter of self-checks drops no colliding pair: on 1,500 random and near-home
    configurations the scene reports self-collision exactly when some pair's own distance query finds contact,
    and names the first such pair."""
    scene = planner.scene
    scene.sync([])
    b, c, pad = scene.robot.body, scene.client, scene.config.self_padding
    rng = np.random.default_rng(3)
    lo, hi, home = scene.robot.lower, scene.robot.upper, np.array(spec.robot.home)
    colliding = 0
    for k in range(1500):
        q = rng.uniform(lo, hi) if k % 2 else np.clip(home + rng.normal(0.0, 0.8, len(home)), lo, hi)
        got = scene.collision(q)
        first = next(
            (
                (i, j)
                for i, j in scene.self_pairs
                if pb.getClosestPoints(b, b, pad, linkIndexA=i, linkIndexB=j, physicsClientId=c)
            ),
            None,
        )
        if first is None:
            assert got is None or not got.startswith("self"), (q, got)
        else:
            colliding += 1
            assert got == f"self: links {first[0]} and {first[1]}", (q, got)
    assert colliding > 100  # the sample reaches self-collision often enough to mean something


def test_pose_goal_and_cartesian_descent(planner, spec, config):
    planner.scene.sync([])
    reach = planner.plan_pose(spec.robot.home, [0.55, 0.05, 0.25], DOWN, seed=1)
    assert reach.success, reach.message
    pos, orn = planner.scene.kinematics.fk(reach.path[-1])
    assert np.linalg.norm(pos - [0.55, 0.05, 0.25]) < 0.002
    descend = planner.plan_cartesian(reach.path[-1], [0.55, 0.05, 0.1], DOWN)
    assert descend.success, descend.message
    for q in descend.path:
        p, _ = planner.scene.kinematics.fk(q)
        assert np.linalg.norm(p[:2] - [0.55, 0.05]) < 0.003
    assert np.max(np.abs(np.diff(descend.path, axis=0))) <= config.max_joint_jump


def test_depth_obstacle_the_scene_was_not_told_about_is_avoided(planner, spec, config, sim, ends):
    planner.scene.sync([])  # the planner is never told about the wall
    qa, qb = ends
    sim.robot.reset_joints(qa)
    frame = sim.capture()
    boxes = planner.scene.update_from_depth(frame.depth, sim.camera.intrinsics, camera_pose(spec.camera), qa)
    assert boxes > 0
    result = planner.plan_joints(qa, qb, seed=5)
    assert result.code == SUCCESS, result.message
    assert_free_trajectory(result, spec, config, sim)
    planner.scene.clear_voxels()


def test_config_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "planning.yaml"
    bad.write_text("default_planner: RRTConnect\ncollision: {padding: fast}\n")
    with pytest.raises(ConfigError, match=r"planning.yaml: field 'collision.padding'"):
        load_config(bad)
    bad.write_text("default_planner: Dijkstra\n")
    with pytest.raises(ConfigError, match="default_planner"):
        load_config(bad)


@pytest.mark.parametrize("length", [1e-6, 0.005, 0.02])
def test_a_motion_within_one_densify_step_takes_the_time_optimal_time(length):
    """A path shorter than one densify step (0.02 rad) used to get a time of 2 L / 1e-12 s: the back end then
    died allocating its samples. Rest to rest at acceleration a, it takes 2 sqrt(L / a)."""
    from myriad_planning.timing import time_parametrize

    path = np.zeros((2, 7))
    path[1, 3] = length
    traj = time_parametrize(path, [1.0] * 7, [2.0] * 7)
    assert traj.duration == pytest.approx(2 * math.sqrt(length / 2.0), rel=1e-9)
    assert np.array_equal(traj.positions[-1], path[1]) and np.all(np.abs(traj.velocities) <= 1.0)
