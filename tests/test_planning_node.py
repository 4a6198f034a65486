"""The planner node with a real sim server and controller in their own process: plan, plan-and-execute around a
wall while the arm's joint states never touch it, fast failure on an unreachable goal."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pybullet as pb
import pytest

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
pytest.importorskip("myriad_interfaces.action", reason="source scripts/env.sh (built interfaces)")
from geometry_msgs.msg import Pose  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from myriad_interfaces.action import PlanAndExecute  # noqa: E402
from myriad_interfaces.srv import PlanMotion, SpawnEntity  # noqa: E402
from myriad_sim.spec import load_world  # noqa: E402
from myriad_sim.world import World  # noqa: E402

WS = Path(__file__).resolve().parents[1]
WALL_POS = (0.6, 0.0, 0.28)
DOWN = pb.getQuaternionFromEuler([0.0, math.pi, 0.0])
RUN = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from myriad_runtime.container import main; main()"
)
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
def backend(tmp_path_factory):
    """Sim server (+ controllers) and planner in one process under /t<hex>; yields (namespace, log path)."""
    ns = f"/t{uuid.uuid4().hex[:8]}"
    log_path = tmp_path_factory.mktemp("node") / "backend.log"
    env = dict(
        os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(random.randint(40, 99))
    )
    cmd = [sys.executable, "-c", RUN, "--nodes", *NODES, "--ros-args", "-r", f"__ns:={ns}"]
    cmd += ["-p", "renderer:=tiny", "-p", f"world_file:={WS / 'worlds/tray.yaml'}", "-p", "seed:=3"]
    cmd += ["-p", f"planning_config:={WS / 'config/planning.yaml'}"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    old_domain = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    try:
        yield ns, log_path
    finally:
        for sig, wait in ((signal.SIGINT, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        if old_domain is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = old_domain


@pytest.fixture(scope="module")
def client(backend):
    """A test node with plan / spawn clients, the plan_and_execute action client and recorded joint states."""
    ns, log_path = backend
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"planning_test_{uuid.uuid4().hex[:6]}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.joints = []
    node.create_subscription(JointState, f"{ns}/joint_states", node.joints.append, 100)
    node.plan = node.create_client(PlanMotion, f"{ns}/plan")
    node.spawn = node.create_client(SpawnEntity, f"{ns}/spawn_entity")
    node.action = ActionClient(node, PlanAndExecute, f"{ns}/plan_and_execute")
    deadline = time.monotonic() + 20
    while not (
        node.plan.service_is_ready() and node.spawn.service_is_ready() and node.action.server_is_ready()
    ):
        executor.spin_once(timeout_sec=0.1)
        assert time.monotonic() < deadline, f"back end not up; log:\n{log_path.read_text()[-3000:]}"
    node.executor_ = executor
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def done(node, future, timeout: float):
    node.executor_.spin_until_future_complete(future, timeout_sec=timeout)
    assert future.done(), "no answer in time"
    return future.result()


def plan_and_execute(node, position, timeout: float = 20.0):
    phases = []
    goal = PlanAndExecute.Goal(goal_type="pose", pose_goal=pose_msg(position))
    handle = done(node, node.action.send_goal_async(goal, lambda fb: phases.append(fb.feedback.phase)), 5.0)
    assert handle.accepted
    return done(node, handle.get_result_async(), timeout).result, phases


def test_plan_and_execute_around_wall_never_touches_it(client, wall):
    spec = load_world(WS / "worlds" / "tray.yaml")
    req = SpawnEntity.Request(name="wall", source=wall, pose=pose_msg(WALL_POS, (0, 0, 0, 1)), fixed=True)
    res = done(client, client.spawn.call_async(req), 5.0)
    assert res.success, res.message
    left, phases = plan_and_execute(client, (0.6, 0.2, 0.2))
    assert left.error_code == 1, left.message
    assert phases == ["planning", "executing"]
    client.joints.clear()
    right, _ = plan_and_execute(client, (0.6, -0.2, 0.2))
    assert right.error_code == 1, right.message
    assert right.planning_time > 0 and right.path_length > 0 and right.execution_time > 0
    # Drain the joint_states queue (50 Hz of sim time, faster than real time); the idle sim then repeats the
    # final state every 0.1 s.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        client.executor_.spin_once(timeout_sec=0.05)
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


def test_plan_service_joint_goal_and_unreachable_pose(client):
    home = [0.0, -0.45, 0.0, -1.45, 0.0, 2.0, 0.0]
    res = done(client, client.plan.call_async(PlanMotion.Request(goal_type="joints", joint_goal=home)), 10.0)
    assert res.error_code == 1, res.message
    traj = res.trajectory
    assert traj.joint_names == [f"J{i}" for i in range(7)]
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in traj.points]
    assert np.all(np.diff(times) > 0) and np.allclose(traj.points[-1].positions, home)
    far = PlanMotion.Request(goal_type="pose", pose_goal=pose_msg((1.6, 0.0, 0.2)))
    res = done(client, client.plan.call_async(far), 60.0)  # refused by IK, not by a planning timeout (bench/)
    assert res.error_code == -31 and "no IK solution" in res.message and not res.trajectory.points
