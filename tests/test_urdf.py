"""The robot's URDF: read by an independent parser, forward kinematics (own, from the parsed joints) against
PyBullet's link poses, the same physics as the PyBullet SDF it was derived from, and the sim running from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pybullet as pb
import pybullet_data
import pytest
from urdf_parser_py.urdf import URDF

from myriad_sim.description import load_robot_body, resolve_meshes, robot_description
from myriad_sim.spec import SpecError, load_robot, load_world
from myriad_sim.world import World

WS = Path(__file__).resolve().parent.parent
URDF_FILE = WS / "urdf" / "iiwa_wsg50.urdf"
SDF_FILE = Path(pybullet_data.getDataPath()) / "kuka_iiwa" / "kuka_with_gripper2.sdf"


def rpy_matrix(rpy) -> np.ndarray:
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def axis_angle(axis, angle) -> np.ndarray:
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def fk(robot: URDF, q: dict[str, float]) -> dict[str, np.ndarray]:
    """World 4x4 pose of every link from the parsed joint origins and axes (base at the origin)."""
    poses = {robot.get_root(): np.eye(4)}
    pending = list(robot.joints)
    while pending:
        j = pending.pop(0)
        if j.parent not in poses:
            pending.append(j)
            continue
        origin = np.eye(4)
        origin[:3, :3] = rpy_matrix(j.origin.rpy if j.origin else (0, 0, 0))
        origin[:3, 3] = j.origin.xyz if j.origin else (0, 0, 0)
        motion = np.eye(4)
        if j.type in ("revolute", "continuous"):
            motion[:3, :3] = axis_angle(j.axis, q.get(j.name, 0.0))
        poses[j.child] = poses[j.parent] @ origin @ motion
    return poses


@pytest.fixture(scope="module")
def parsed() -> URDF:
    return URDF.from_xml_string(resolve_meshes(URDF_FILE.read_text()))


@pytest.fixture
def client():
    c = pb.connect(pb.DIRECT)
    yield c
    pb.disconnect(c)


def test_parses_with_inertials_collisions_limits_and_existing_meshes(parsed):
    assert parsed.name == "iiwa_wsg50"
    assert len(parsed.links) == 15 and len(parsed.joints) == 14
    for link in parsed.links:
        assert link.inertial is not None, link.name
        assert link.collisions, f"{link.name} has no collision geometry"
        for g in [c.geometry for c in link.collisions] + [v.geometry for v in link.visuals]:
            if hasattr(g, "filename"):
                assert Path(g.filename).is_file(), g.filename
    arm = [parsed.joint_map[f"J{i}"] for i in range(7)]
    assert all(j.type == "revolute" and j.limit.lower < 0 < j.limit.upper for j in arm)
    assert arm[0].limit.upper == pytest.approx(2.96706) and arm[6].dynamics.damping == 0.5
    assert sum(link.inertial.mass for link in parsed.links) == pytest.approx(19.9)


def test_robot_description_refers_to_meshes_by_file_uri(parsed):
    text = robot_description(URDF_FILE)
    assert 'filename="pybullet_data:' not in text
    uris = [m.split('"')[0] for m in text.split('filename="')[1:]]
    assert len(uris) == 24 and all(u.startswith("file:///") for u in uris)
    assert all(Path(u.removeprefix("file://")).is_file() for u in uris)


def test_forward_kinematics_agrees_with_pybullet(parsed, client):
    body = load_robot_body(client, URDF_FILE, (0, 0, 0), (0, 0, 0, 1))
    n = pb.getNumJoints(body, physicsClientId=client)
    info = [pb.getJointInfo(body, j, physicsClientId=client) for j in range(n)]
    rng = np.random.default_rng(0)
    worst_mm, worst_deg = 0.0, 0.0
    for _ in range(100):
        q = {}
        for j, i in enumerate(info):
            joint = parsed.joint_map[i[1].decode()]
            lo, hi = (joint.limit.lower, joint.limit.upper) if joint.limit else (-np.pi, np.pi)
            q[joint.name] = 0.0 if joint.type == "fixed" else rng.uniform(max(lo, -np.pi), min(hi, np.pi))
            pb.resetJointState(body, j, q[joint.name], physicsClientId=client)
        poses = fk(parsed, q)
        for j, i in enumerate(info):
            state = pb.getLinkState(body, j, computeForwardKinematics=True, physicsClientId=client)
            expected = poses[i[12].decode()]
            rot = np.array(pb.getMatrixFromQuaternion(state[5])).reshape(3, 3)
            worst_mm = max(worst_mm, 1000 * np.linalg.norm(np.subtract(state[4], expected[:3, 3])))
            cos = np.clip((np.trace(rot.T @ expected[:3, :3]) - 1) / 2, -1, 1)
            worst_deg = max(worst_deg, np.degrees(np.arccos(cos)))
    assert worst_mm <= 1.0 and worst_deg <= 0.1, (worst_mm, worst_deg)


def test_same_physics_as_the_pybullet_sdf_it_replaces(client):
    """Masses, inertias, joint axes/limits/damping, link frames and collision shapes equal those of the SDF."""
    urdf = load_robot_body(client, URDF_FILE, (0, 0, 0), (0, 0, 0, 1))
    sdf = pb.loadSDF(str(SDF_FILE), physicsClientId=client)[0]
    n = pb.getNumJoints(urdf, physicsClientId=client)
    assert n == pb.getNumJoints(sdf, physicsClientId=client) == 14
    for j in range(-1, n):
        a, b = (pb.getDynamicsInfo(body, j, physicsClientId=client) for body in (urdf, sdf))
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-6, err_msg=f"dynamics of link {j}")
        a, b = (pb.getCollisionShapeData(body, j, physicsClientId=client) for body in (urdf, sdf))
        assert [s[2] for s in a] == [s[2] for s in b], f"collision shape types of link {j}"
        np.testing.assert_allclose(
            [s[3] + s[5] + s[6] for s in a], [s[3] + s[5] + s[6] for s in b], atol=1e-6
        )
        if j >= 0:
            a, b = (pb.getJointInfo(body, j, physicsClientId=client) for body in (urdf, sdf))
            assert (a[1], a[2], a[12], a[16]) == (b[1], b[2], b[12], b[16])
            np.testing.assert_allclose(a[6:11] + a[13], b[6:11] + b[13], atol=1e-6)  # limits, damping, axis
            np.testing.assert_allclose(a[14] + a[15], b[14] + b[15], atol=1e-5)  # frame in the parent


def test_the_sim_loads_the_urdf_and_holds_its_home_pose():
    spec = load_world(WS / "worlds" / "tray.yaml")
    assert spec.robot.model == str(URDF_FILE)
    world = World(spec, renderer="tiny")
    try:
        world.step(240)
        q = world.robot.joint_positions()
        assert np.abs(q - np.array(spec.robot.home)).max() < 0.01
        pos, _ = world.robot.tool_pose()
        assert pos[2] > 0.3
    finally:
        world.close()


def test_robot_file_must_name_a_urdf(tmp_path):
    text = (WS / "urdf" / "iiwa_wsg50.yaml").read_text()
    bad = tmp_path / "robot.yaml"
    bad.write_text(text.replace("model: iiwa_wsg50.urdf", f"model: {SDF_FILE}"))
    with pytest.raises(SpecError, match=r"robot.yaml: field 'model': expected the robot's URDF file"):
        load_robot(bad)


def test_a_missing_mesh_is_named():
    from myriad_sim.models import ModelError

    text = '<robot name="r"><link name="a"><visual><geometry><mesh filename="pybullet_data:no/such.stl"/>'
    with pytest.raises(ModelError, match=r'mesh filename="pybullet_data:no/such.stl": no file .*no/such.stl'):
        resolve_meshes(text + "</geometry></visual></link></robot>")
