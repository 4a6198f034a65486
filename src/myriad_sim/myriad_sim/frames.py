"""The TF tree of a world, from the simulator's own poses: robot links (parent -> child, as in the URDF), objects,
fixed models, the camera (camera_link: x forward, z up; camera_optical: z forward, x right, y down) and the tool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as pb

from myriad_sim.camera import Camera

WORLD = "world"
TOOL = "tool"
CAMERA_LINK = "camera_link"
CAMERA_OPTICAL = "camera_optical"

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


@dataclass(frozen=True)
class Transform:
    parent: str
    child: str
    position: Vec3
    orientation: Quat  # x, y, z, w


def frame_prefix(namespace: str) -> str:
    """Default frame prefix of a back end: its namespace's last element and a slash ('/myriad/b0' -> 'b0/')."""
    last = namespace.rstrip("/").rsplit("/", 1)[-1]
    return f"{last}/" if last else ""


def link_names(client: int, body: int) -> list[str]:
    """Names of the body's links: the base, then link j at index j + 1."""
    base = pb.getBodyInfo(body, physicsClientId=client)[0].decode()
    joints = range(pb.getNumJoints(body, physicsClientId=client))
    return [base] + [pb.getJointInfo(body, j, physicsClientId=client)[12].decode() for j in joints]


def base_frame(client: int, body: int) -> tuple[Vec3, Quat]:
    """World pose of the base link's own frame (PyBullet reports the base's centre of mass)."""
    pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=client)
    local = pb.getDynamicsInfo(body, -1, physicsClientId=client)[3:5]
    inv_pos, inv_orn = pb.invertTransform(*local)
    return pb.multiplyTransforms(pos, orn, inv_pos, inv_orn)


def relative(parent: tuple[Vec3, Quat], child: tuple[Vec3, Quat]) -> tuple[Vec3, Quat]:
    inv_pos, inv_orn = pb.invertTransform(*parent)
    return pb.multiplyTransforms(inv_pos, inv_orn, *child)


class FrameTree:
    """The transforms of one World: `static()` once (tf_static), `dynamic()` at every publication (tf)."""

    def __init__(self, world) -> None:
        self.world = world
        robot = world.robot
        self.names = link_names(world.client, robot.body)
        self.parents = [
            pb.getJointInfo(robot.body, j, physicsClientId=world.client)[16] + 1
            for j in range(len(self.names) - 1)
        ]

    def static(self) -> list[Transform]:
        """World -> robot base and fixed models, world -> camera_link -> camera_optical, ee_link -> tool."""
        w = self.world
        fixed = ["robot"] + [m.name for m in w.spec.models]
        out = []
        for name in fixed:
            frame = self.names[0] if name == "robot" else name
            out.append(Transform(WORLD, frame, *base_frame(w.client, w.entities[name].body)))
        optical = Camera(w.spec.camera).rotation()  # columns: x right, y down, z forward
        link = np.column_stack([optical[:, 2], -optical[:, 0], -optical[:, 1]])  # x forward, y left, z up
        out.append(Transform(WORLD, CAMERA_LINK, tuple(w.spec.camera.position), matrix_quat(link)))
        out.append(Transform(CAMERA_LINK, CAMERA_OPTICAL, (0.0, 0.0, 0.0), matrix_quat(link.T @ optical)))
        spec = w.robot.spec
        out.append(Transform(spec.ee_link, TOOL, tuple(spec.tool_offset), (0.0, 0.0, 0.0, 1.0)))
        return out

    def dynamic(self) -> list[Transform]:
        """Every robot joint (parent link -> child link) and world -> each object."""
        w, c, body = self.world, self.world.client, self.world.robot.body
        states = pb.getLinkStates(
            body, range(len(self.names) - 1), computeForwardKinematics=True, physicsClientId=c
        )
        poses = [base_frame(c, body)] + [(s[4], s[5]) for s in states]
        out = [
            Transform(self.names[p], self.names[i + 1], *relative(poses[p], poses[i + 1]))
            for i, p in enumerate(self.parents)
        ]
        for name in w.object_names():
            out.append(Transform(WORLD, name, *base_frame(c, w.entities[name].body)))
        return out


def optical_pose(camera: Camera) -> tuple[Vec3, Quat]:
    """The camera's optical frame (x right, y down, z along the view) in the world: position, quaternion xyzw."""
    return tuple(float(v) for v in camera.spec.position), matrix_quat(camera.rotation())


def camera_record(camera: Camera) -> dict:
    """A record's `camera`: image size, intrinsics `k` (row-major 3x3) and the optical frame's pose."""
    position, orientation = optical_pose(camera)
    return {
        "width": camera.spec.width,
        "height": camera.spec.height,
        "k": camera.intrinsics.flatten().tolist(),
        "position": list(position),
        "orientation": list(orientation),
    }


def matrix_quat(m: np.ndarray) -> Quat:
    """Quaternion (x, y, z, w) of a rotation matrix."""
    m = np.asarray(m, float)
    w = np.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
    return float(x), float(y), float(z), float(w)
