"""The sim server node in a real process: services, camera, controllers, errors over ROS."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectoryPoint

from myriad_interfaces.action import ExecuteTrajectory, GripperCommand
from myriad_interfaces.msg import ResultCode
from myriad_interfaces.srv import (
    CaptureImages,
    DeleteEntity,
    GetEntityState,
    ResetWorld,
    SpawnEntity,
    StepSimulation,
)
from myriad_sim.clock import episode_time, nanoseconds
from myriad_sim.image_codec import imgmsg_to_cv2

NS = f"/test_sim_{os.getpid()}"
JOINTS = [f"J{i}" for i in range(7)]


@pytest.fixture(scope="module")
def sim(module_node_procs):
    from conftest import RosClient

    proc = module_node_procs(
        ["myriad_sim.sim_server_node:SimServerNode"], NS, {"sim_server": {"renderer": "tiny"}}, log="sim.log"
    )
    client = RosClient(NS)
    yield client
    client.close()
    module_node_procs.stop()
    assert proc.returncode == 0, (module_node_procs.directory / "sim.log").read_text()[-2000:]


def pose(x, y, z) -> Pose:
    p = Pose()
    p.position.x, p.position.y, p.position.z = x, y, z
    p.orientation.w = 1.0
    return p


def full_state(o) -> tuple:
    """Name, source, body id, full pose and twist of an EntityState message."""
    p, q, v, w = o.pose.position, o.pose.orientation, o.twist.linear, o.twist.angular
    return (o.name, o.source, o.body_id, p.x, p.y, p.z, q.x, q.y, q.z, q.w, v.x, v.y, v.z, w.x, w.y, w.z)


def test_reset_spawn_state_delete_round_trip(sim):
    res = sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=5, object_count=3))
    assert res.success and len(res.objects) == 3
    again = sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=5, object_count=3))
    assert [full_state(o) for o in again.objects] == [full_state(o) for o in res.objects]
    other = sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=6, object_count=3))
    assert [full_state(o) for o in other.objects] != [full_state(o) for o in res.objects]
    spawned = sim.call(
        SpawnEntity,
        "spawn_entity",
        SpawnEntity.Request(name="cube", source="object:42", pose=pose(0.6, 0.2, 0.3)),
    )
    assert spawned.success, spawned.message
    state = sim.call(GetEntityState, "get_entity_state", GetEntityState.Request(names=["cube"]))
    assert state.success and abs(state.states[0].pose.position.x - 0.6) < 1e-6
    assert sim.call(DeleteEntity, "delete_entity", DeleteEntity.Request(name="cube")).success
    gone = sim.call(GetEntityState, "get_entity_state", GetEntityState.Request(names=["cube"]))
    assert not gone.success and "no entity called 'cube'" in gone.message


def test_spawn_errors_are_clear(sim):
    bad = sim.call(
        SpawnEntity,
        "spawn_entity",
        SpawnEntity.Request(name="x", source="object:5000", pose=pose(0.6, 0, 0.3)),
    )
    assert not bad.success and "unknown object id 5000" in bad.message
    far = sim.call(
        SpawnEntity, "spawn_entity", SpawnEntity.Request(name="x", source="object:5", pose=pose(9.0, 0, 0.3))
    )
    assert not far.success and far.message.startswith("pose:")


@pytest.mark.parametrize(
    "sdf, words",
    [
        ('<sdf version="1.6"><world name="w"/></sdf>', "no <model> with a <link>"),
        ('<sdf version="1.6"><model name="m"><link><pose>0 0 0 0 0 0</pose></link></model></sdf>',
         "PyBullet could not load"),
    ],
)  # fmt: skip
def test_a_model_pybullet_cannot_load_fails_the_request_not_the_server(sim, tmp_path, sdf, words):
    """Both used to end the sim server's process (an IndexError, PyBullet's own error); the module's fixture
    checks the process exits cleanly at the end."""
    path = tmp_path / "model.sdf"
    path.write_text(sdf)
    req = SpawnEntity.Request(name="m", source=str(path), pose=pose(0.6, 0.0, 0.3))
    res = sim.call(SpawnEntity, "spawn_entity", req)
    assert not res.success and res.message.startswith("source:") and words in res.message, res.message
    ok = sim.call(
        SpawnEntity, "spawn_entity", SpawnEntity.Request(name="m", source="object:5", pose=pose(0.6, 0, 0.3))
    )
    assert ok.success, ok.message
    assert sim.call(DeleteEntity, "delete_entity", DeleteEntity.Request(name="m")).success


def frames(res) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return imgmsg_to_cv2(res.rgb), imgmsg_to_cv2(res.depth), imgmsg_to_cv2(res.segmentation)


def test_capture_images_and_camera_info(sim, world_capture):
    """The node's images are the world's: identical to an in-process capture of the same seed, and a spawned
    object's body id is where its position projects."""
    sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=3, object_count=3))
    res = sim.call(CaptureImages, "capture_images", CaptureImages.Request())
    rgb, depth, seg = frames(res)
    assert rgb.shape == (472, 472, 3) and depth.shape == (472, 472) and seg.shape == (472, 472)
    assert depth.dtype == np.float32 and 0.1 < float(np.median(depth)) < 2.0
    local = world_capture["frame"]
    assert np.array_equal(seg, local.segmentation) and np.array_equal(rgb, local.rgb)
    np.testing.assert_allclose(depth, local.depth, atol=1e-6)
    k = np.array(res.camera_info.k).reshape(3, 3)
    assert k[0, 2] == 236 and k[1, 2] == 236 and k[0, 0] > 0
    # A free spot on the tray floor: the corner farthest from every object.
    corners = [(x, y, 0.08) for x in (0.6, 0.75) for y in (-0.15, 0.15)]
    where = max(
        corners,
        key=lambda c: min(np.hypot(c[0] - p[0], c[1] - p[1]) for _, p in world_capture["objects"].values()),
    )
    spawned = sim.call(
        SpawnEntity,
        "spawn_entity",
        SpawnEntity.Request(name="probe", source="object:42", pose=pose(*where), fixed=True),
    )
    assert spawned.success, spawned.message
    rgb2, _, seg2 = frames(sim.call(CaptureImages, "capture_images", CaptureImages.Request()))
    u, v = (int(c) for c in world_capture["camera"].project(where))
    assert spawned.body_id not in set(np.unique(seg)) and seg2[v, u] == spawned.body_id
    assert np.any(rgb2[v - 2 : v + 3, u - 2 : u + 3] != rgb[v - 2 : v + 3, u - 2 : u + 3])
    assert sim.call(DeleteEntity, "delete_entity", DeleteEntity.Request(name="probe")).success


def test_camera_and_clock_topics(sim):
    """capture_images also publishes on camera/*; stepping publishes the sim time on clock."""
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image

    reset = sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=4, object_count=2))
    res = sim.call(CaptureImages, "capture_images", CaptureImages.Request())
    capture = lambda: sim.call(CaptureImages, "capture_images", CaptureImages.Request())  # noqa: E731
    for topic, expected in (("rgb", res.rgb), ("depth", res.depth), ("segmentation", res.segmentation)):
        msg = sim.wait_message(Image, f"camera/{topic}/image", trigger=capture)
        assert (msg.encoding, msg.height, msg.width) == (expected.encoding, 472, 472)
        assert bytes(msg.data) == bytes(expected.data), topic
    info = sim.wait_message(CameraInfo, "camera/camera_info", trigger=capture)
    assert list(info.k) == list(res.camera_info.k)
    stepped = sim.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=240))
    t = stepped.sim_time.sec + stepped.sim_time.nanosec * 1e-9
    settled = reset.sim_time.sec + reset.sim_time.nanosec * 1e-9  # the drops and the settling, in sim time
    assert settled > 0 and t == pytest.approx(settled + 240 / 240, abs=1e-6)  # then 240 steps more
    clock = sim.wait_message(Clock, "clock", lambda m: m.clock.sec + m.clock.nanosec * 1e-9 >= t - 1e-9)
    assert (clock.clock.sec, clock.clock.nanosec) == (stepped.sim_time.sec, stepped.sim_time.nanosec)


def test_clock_runs_on_across_resets(sim):
    """Stamps and clock never go back: a reset starts its episode one step after the last instant (RViz and tf2
    reset or drop data on a jump back); the episode's own time still starts at 0, so the same seed settles the
    same way in every episode."""
    from rosgraph_msgs.msg import Clock

    dt_ns = round(1e9 / 240)
    first = sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=4, object_count=2))
    stepped = sim.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=24))
    second = sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=4, object_count=2))
    assert first.success and second.success
    assert nanoseconds(first.episode_start) <= nanoseconds(first.sim_time) < nanoseconds(stepped.sim_time)
    assert abs(nanoseconds(second.episode_start) - (nanoseconds(stepped.sim_time) + dt_ns)) <= 1
    settled = [episode_time(r.sim_time, r.episode_start, 1 / 240) for r in (first, second)]
    assert settled[0] == settled[1] > 0, settled
    assert [full_state(o) for o in first.objects] == [full_state(o) for o in second.objects]
    after = sim.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=1))
    assert nanoseconds(after.sim_time) - nanoseconds(second.sim_time) == pytest.approx(dt_ns, abs=1)
    assert after.joint_state.header.stamp == after.sim_time
    clock = sim.wait_message(Clock, "clock", trigger=lambda: sim.call(StepSimulation, "step_simulation",
                                                                        StepSimulation.Request(steps=1)))  # fmt: skip
    assert nanoseconds(clock.clock) > nanoseconds(stepped.sim_time)


def test_trajectory_goal_reached_within_tolerance(sim):
    sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=1, object_count=1))
    goal = ExecuteTrajectory.Goal()
    goal.trajectory.joint_names = JOINTS
    target = [0.3, 0.1, 0.0, -1.4, 0.0, 1.5, 0.2]
    point = JointTrajectoryPoint(positions=target)
    point.time_from_start.sec = 2
    goal.trajectory.points = [point]
    result = sim.action(ExecuteTrajectory, "execute_trajectory", goal)
    assert result.error_code == ResultCode.SUCCESS, result.message
    assert result.final_error <= 0.01
    stepped = sim.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=0))
    now = stepped.joint_state
    q = [now.position[list(now.name).index(j)] for j in JOINTS]
    assert np.max(np.abs(np.array(q) - target)) <= 0.01
    # get_entity_state answers with the joints of the same instant (what the planner starts from), stamped
    snapshot = sim.call(GetEntityState, "get_entity_state", GetEntityState.Request())
    assert snapshot.success and "robot" in [s.name for s in snapshot.states]
    assert list(snapshot.joint_state.name) == list(now.name)
    assert list(snapshot.joint_state.position) == list(now.position)
    assert snapshot.joint_state.header.stamp == stepped.sim_time != Time()


def test_bad_trajectory_and_gripper(sim):
    goal = ExecuteTrajectory.Goal()
    goal.trajectory.joint_names = JOINTS[:6] + ["elbow"]
    goal.trajectory.points = [JointTrajectoryPoint(positions=[0.0] * 7)]
    result = sim.action(ExecuteTrajectory, "execute_trajectory", goal)
    assert result.error_code == ResultCode.INVALID_GOAL and "unknown joints ['elbow']" in result.message
    nan, ragged = [0.0] * 6 + [float("nan")], [0.0] * 6
    for positions, velocities in ((nan, []), (ragged, []), ([0.0] * 7, [0.0] * 6)):
        goal.trajectory.joint_names = JOINTS
        point = JointTrajectoryPoint(positions=[0.1] * 7, velocities=[0.0] * 7)
        point.time_from_start.sec = 1
        last = JointTrajectoryPoint(positions=positions, velocities=velocities)
        last.time_from_start.sec = 2
        goal.trajectory.points = [point, last]
        result = sim.action(ExecuteTrajectory, "execute_trajectory", goal)
        assert result.error_code == ResultCode.INVALID_GOAL and "finite" in result.message, result.message
    command = JointState(name=JOINTS, position=nan)
    step = sim.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=1, command=command))
    assert not step.success and step.message.startswith("command:"), step.message
    closed = sim.action(GripperCommand, "gripper_command", GripperCommand.Goal(position=0.0, max_effort=10.0))
    assert closed.reached_goal and closed.position < 0.05


def test_trajectory_cancel_and_path_tolerance_abort(sim):
    """A long trajectory cancelled after its first feedback stops short (CANCELED, -4); a path tolerance the
    arm cannot keep aborts the goal (ABORTED, -2)."""
    import threading

    from action_msgs.msg import GoalStatus

    sim.call(ResetWorld, "reset_world", ResetWorld.Request(seed=1, object_count=0))
    target = [0.3, 0.1, 0.0, -1.4, 0.0, 1.5, 0.2]
    goal = ExecuteTrajectory.Goal()
    goal.trajectory.joint_names = JOINTS
    point = JointTrajectoryPoint(positions=target)
    point.time_from_start.sec = 120
    goal.trajectory.points = [point]
    start = sim.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=0)).sim_time
    moving = threading.Event()
    handle = sim.send_goal(ExecuteTrajectory, "execute_trajectory", goal, feedback=lambda _fb: moving.set())
    assert moving.wait(60), "no feedback"
    sim.wait(handle.cancel_goal_async())
    done = sim.wait(handle.get_result_async())
    assert done.status == GoalStatus.STATUS_CANCELED and done.result.error_code == ResultCode.CANCELLED, (
        done.result.message
    )
    now = sim.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=0))
    assert nanoseconds(now.sim_time) - nanoseconds(start) < 120 * 10**9  # stopped before the trajectory's end
    q = [now.joint_state.position[list(now.joint_state.name).index(j)] for j in JOINTS]
    assert np.max(np.abs(np.array(q) - target)) > 0.05
    point.time_from_start.sec = 1
    strict = ExecuteTrajectory.Goal(trajectory=goal.trajectory, path_tolerance=1e-4)
    done = sim.wait(sim.send_goal(ExecuteTrajectory, "execute_trajectory", strict).get_result_async())
    assert (
        done.status == GoalStatus.STATUS_ABORTED
        and done.result.error_code == ResultCode.PATH_TOLERANCE_VIOLATED
    )
    assert "path tolerance 0.0001 rad violated" in done.result.message


def test_free_running_keeps_its_real_time_factor_after_a_reset(node_procs):
    """With real_time_factor 1, sim time follows wall time from a reset on; it used to race ahead (catching up
    with the wall time since the node started)."""
    from conftest import RosClient

    ns = f"{NS}_rtf"
    node_procs(["myriad_sim.sim_server_node:SimServerNode"], ns,
               {"sim_server": {"renderer": "tiny", "real_time_factor": 1.0, "visualization": False}})  # fmt: skip
    client = RosClient(ns)
    try:

        def now() -> float:
            res = client.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=0))
            return res.sim_time.sec + res.sim_time.nanosec * 1e-9

        now()
        time.sleep(6.0)  # wall time the node has run before the reset
        reset = client.call(ResetWorld, "reset_world", ResetWorld.Request(seed=1, object_count=0))
        t0, w0 = reset.sim_time.sec + reset.sim_time.nanosec * 1e-9, time.monotonic()
        time.sleep(2.0)
        t1, w1 = now(), time.monotonic()
        # Follows wall time: neither racing ahead nor stalled (the lower bound leaves room for a busy host).
        assert reset.success and 0.5 * (w1 - w0) < t1 - t0 < (w1 - w0) + 1.0, (t0, t1, w1 - w0)
    finally:
        client.close()
