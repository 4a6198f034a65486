"""The planner node with a real sim server and controller in their own process: plan, plan-and-execute around a
wall while the arm's joint states never touch it, fast failure on an unreachable goal."""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path

import numpy as np
import pybullet as pb
import pytest

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
pytest.importorskip("myriad_interfaces.action", reason="source scripts/env.sh (built interfaces)")
from geometry_msgs.msg import Pose  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from myriad_interfaces.action import PlanAndExecute  # noqa: E402
from myriad_interfaces.msg import ResultCode  # noqa: E402
from myriad_interfaces.srv import PlanMotion, SpawnEntity  # noqa: E402
from myriad_sim.spec import load_world  # noqa: E402
from myriad_sim.world import World  # noqa: E402

WS = Path(__file__).resolve().parents[1]
WALL_POS = (0.6, 0.0, 0.28)
DOWN = pb.getQuaternionFromEuler([0.0, math.pi, 0.0])
NODES = ["myriad_sim.sim_server_node:SimServerNode", "myriad_planning.planner_node:PlannerNode"]


def pose_msg(position, orientation=DOWN) -> Pose:
    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in position)
    o = p.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in orientation)
    return p


@pytest.fixture(scope="module")
def wall(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "wall.urdf"
    box = '<geometry><box size="0.2 0.02 0.5"/></geometry>'
    path.write_text(
        f'<robot name="wall"><link name="b"><collision>{box}</collision><visual>{box}</visual></link></robot>'
    )
    return str(path)


@pytest.fixture(scope="module")
def client(module_node_procs):
    """Sim server (+ controllers) and planner in one process under /t<hex>, started as the front end starts
    them; a RosClient in that namespace that records joint states."""
    from conftest import RosClient

    ns = f"/t{uuid.uuid4().hex[:8]}"
    world = str(WS / "worlds/tray.yaml")
    params = {
        "sim_server": {"renderer": "tiny", "world_file": world},
        "planner": {"world_file": world, "seed": 3, "planning_config": str(WS / "config/planning.yaml")},
    }
    # One executor thread for both nodes: plans nest calls to the sim server and the controller (calls.py).
    module_node_procs(NODES, ns, params, log="backend.log", threads=1)
    client = RosClient(ns)
    client.joints = client.subscribe(JointState, "joint_states")
    yield client
    client.close()


def plan(client, request, timeout: float = 60.0):
    return client.call(PlanMotion, "plan", request, timeout=timeout)


@pytest.fixture(scope="module")
def walled(client, wall):
    """The client, with the wall spawned (fixed) in the sim server's world."""
    req = SpawnEntity.Request(name="wall", source=wall, pose=pose_msg(WALL_POS, (0, 0, 0, 1)), fixed=True)
    res = client.call(SpawnEntity, "spawn_entity", req)
    assert res.success, res.message
    return client


def plan_and_execute(client, position, timeout: float = 120.0, seed: int = -1):
    phases = []
    goal = PlanAndExecute.Goal(goal_type="pose", pose_goal=pose_msg(position), seed=seed)
    handle = client.send_goal(
        PlanAndExecute, "plan_and_execute", goal, lambda fb: phases.append(fb.feedback.phase), timeout
    )
    return client.wait(handle.get_result_async(), timeout).result, phases


def test_plan_and_execute_around_wall_never_touches_it(walled, wall):
    client = walled
    spec = load_world(WS / "worlds" / "tray.yaml")
    left, phases = plan_and_execute(client, (0.6, 0.2, 0.2))
    assert left.error_code == ResultCode.SUCCESS, left.message
    assert phases == ["planning", "executing"]
    client.joints.clear()
    right, _ = plan_and_execute(client, (0.6, -0.2, 0.2))
    assert right.error_code == ResultCode.SUCCESS, right.message
    assert right.planning_time > 0 and right.path_length > 0 and right.execution_time > 0
    # The idle sim repeats its final state every 0.1 s: wait until the recorded states reach it.
    final = client.wait_message(JointState, "joint_states", timeout=30)
    deadline = time.monotonic() + 30
    while not (client.joints and list(client.joints[-1].position) == list(final.position)):
        assert time.monotonic() < deadline, "joint states did not reach the final state"
        time.sleep(0.05)
    world = World(spec, renderer="tiny")
    try:
        wall_body = world.spawn("wall", wall, WALL_POS, fixed=True, check_overlap=False).body
        index = {n: i for i, n in enumerate(client.joints[0].name)}
        arm = [[m.position[index[n]] for n in spec.robot.arm_joints] for m in client.joints]
        assert len(arm) > 20
        for q in arm:
            world.robot.reset_joints(q)
            assert not pb.getClosestPoints(world.robot.body, wall_body, 0.0, physicsClientId=world.client)
            assert np.all(np.array(q) >= world.robot.lower - 0.01) and np.all(
                np.array(q) <= world.robot.upper + 0.01
            )
        world.robot.reset_joints(arm[-1])
        assert np.linalg.norm(world.robot.tool_pose()[0] - [0.6, -0.2, 0.2]) < 0.01
        # The wall is in the way: the straight joint-space line from start to goal runs through it.
        blocked = []
        for t in np.linspace(0.0, 1.0, 50):
            world.robot.reset_joints((1 - t) * np.array(arm[0]) + t * np.array(arm[-1]))
            blocked.append(
                bool(pb.getClosestPoints(world.robot.body, wall_body, 0.0, physicsClientId=world.client))
            )
        assert any(blocked), "the direct path does not touch the wall: the test shows no detour"
    finally:
        world.close()


def test_plan_and_execute_takes_a_seed_as_the_plan_service_does(walled):
    """From the same state with the same seed, plan_and_execute plans the path the plan service plans."""
    there, _ = plan_and_execute(walled, (0.6, -0.2, 0.2))
    assert there.error_code == ResultCode.SUCCESS, there.message
    target = (0.6, 0.2, 0.2)  # the other side of the wall
    seeds = (7, 8, 7)
    lengths = [
        plan(walled, PlanMotion.Request(goal_type="pose", pose_goal=pose_msg(target), seed=s)).path_length
        for s in seeds
    ]
    # The wall makes this an OMPL search whose path depends on the seed (else the test would show nothing).
    assert lengths[0] == lengths[2] != lengths[1], f"seeds {seeds}: path lengths {lengths}"
    result, _ = plan_and_execute(walled, target, seed=7)
    assert result.error_code == ResultCode.SUCCESS, result.message
    assert result.path_length == lengths[0]


def test_plan_service_joint_goal_and_unreachable_pose(client):
    home = [0.0, -0.45, 0.0, -1.45, 0.0, 2.0, 0.0]
    res = plan(client, PlanMotion.Request(goal_type="joints", joint_goal=home))
    assert res.error_code == ResultCode.SUCCESS, res.message
    traj = res.trajectory
    assert traj.joint_names == [f"J{i}" for i in range(7)]
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in traj.points]
    assert np.all(np.diff(times) > 0) and np.allclose(traj.points[-1].positions, home)
    far = PlanMotion.Request(goal_type="pose", pose_goal=pose_msg((1.6, 0.0, 0.2)))
    res = plan(client, far)  # refused by IK, not by a planning timeout (bench/)
    assert (
        res.error_code == ResultCode.NO_IK_SOLUTION
        and "no IK solution" in res.message
        and not res.trajectory.points
    )


def test_non_finite_or_zero_pose_goals_are_refused_and_the_planner_goes_on(client):
    """A NaN pose used to hang the planner inside PyBullet's IK, holding its lock; now every such goal is
    INVALID_GOAL, answered at once, and the next request is planned."""
    nan = float("nan")
    for goal_type in ("pose", "cartesian"):
        for position, orientation in (
            ((nan, 0.0, 0.3), DOWN),
            ((0.5, 0.0, 0.3), (nan, 0.0, 0.0, 1.0)),
            ((0.5, 0.0, 0.3), (0.0, 0.0, 0.0, 0.0)),
        ):
            req = PlanMotion.Request(goal_type=goal_type, pose_goal=pose_msg(position, orientation))
            res = plan(client, req, timeout=30.0)
            assert res.error_code == ResultCode.INVALID_GOAL and "pose goal" in res.message, res.message
    home = [0.0, -0.45, 0.0, -1.45, 0.0, 2.0, 0.0]
    res = plan(client, PlanMotion.Request(goal_type="joints", joint_goal=home))
    assert res.error_code == ResultCode.SUCCESS, res.message


def test_an_experiment_grasp_over_ros_is_the_in_process_one(client, wall):
    """Experiment.grasp against this back end (plan with each motion's seed, then execute_trajectory) ends in
    the same state, bit for bit, as the same motions in this process. The wall makes a motion an OMPL search,
    whose path depends on the seed (over ROS, plan_and_execute used to plan it with the planner's own seeds)."""
    from myriad import Experiment

    runs = []
    for namespace in (client.node.get_namespace(), None):
        with Experiment(namespace, WS / "worlds/tray.yaml", renderer="tiny", seed=5, timeout=60.0) as e:
            e.reset(object_count=0)
            e.load_object(wall, (*WALL_POS, 0.0, 0.0, 0.0), name="wall", fixed=True)
            e.move_to(((0.6, 0.2, 0.2), DOWN))
            e.move_to(((0.6, -0.2, 0.2), DOWN))  # around the wall
            detour = e.robot_state()
            result = e.grasp(0.6, -0.2, 0.0, 0.05)
            state = e.robot_state()
            runs.append((round(detour.sim_time, 6), detour.joint_positions.tolist(), result.outcome, result.moves,
                         round(state.sim_time, 6), state.joint_positions.tolist()))  # fmt: skip
    assert runs[0][3]["reach"]["ok"] and runs[0] == runs[1], runs


def test_depth_obstacles_come_from_the_sim_servers_camera(module_node_procs, wall, tmp_path):
    """With obstacles.source depth the planner asks the sim server for a depth image before planning (its capture
    client exists only then) and plans around the wall it sees there, which blocks the direct path."""
    from conftest import RosClient

    config = tmp_path / "planning.yaml"
    text = (WS / "config/planning.yaml").read_text()
    assert "source: ground_truth" in text
    config.write_text(text.replace("source: ground_truth", "source: depth"))
    ns, world = f"/t{uuid.uuid4().hex[:8]}", str(WS / "worlds/tray.yaml")
    params = {
        "sim_server": {"renderer": "tiny", "world_file": world},
        "planner": {"world_file": world, "seed": 3, "planning_config": str(config)},
    }
    module_node_procs(NODES, ns, params, log="depth.log", threads=1)
    depth = RosClient(ns)
    spec = load_world(WS / "worlds/tray.yaml")
    sim = World(spec, renderer="tiny")
    try:
        req = SpawnEntity.Request(name="wall", source=wall, pose=pose_msg(WALL_POS, (0, 0, 0, 1)), fixed=True)
        assert depth.call(SpawnEntity, "spawn_entity", req).success
        left = plan(depth, PlanMotion.Request(goal_type="pose", pose_goal=pose_msg((0.6, 0.2, 0.2)), seed=3))
        assert left.error_code == ResultCode.SUCCESS, left.message
        start = list(left.trajectory.points[-1].positions)
        req = PlanMotion.Request(goal_type="pose", pose_goal=pose_msg((0.6, -0.2, 0.2)), start=start, seed=3)
        right = plan(depth, req)
        assert right.error_code == ResultCode.SUCCESS, right.message
        wall_body = sim.spawn("wall", wall, WALL_POS, fixed=True, check_overlap=False).body

        def touches(q) -> bool:
            sim.robot.reset_joints(list(q))
            return bool(pb.getClosestPoints(sim.robot.body, wall_body, 0.0, physicsClientId=sim.client))

        path = [p.positions for p in right.trajectory.points]
        assert not any(touches(q) for q in path)
        straight = [(1 - t) * np.array(path[0]) + t * np.array(path[-1]) for t in np.linspace(0, 1, 50)]
        assert any(touches(q) for q in straight), "the direct path does not touch the wall: no detour shown"
    finally:
        sim.close()
        depth.close()
