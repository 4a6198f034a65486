"""ROS messages for visualization: TF messages, the point cloud of a depth image, and markers (scene, objects,
grasp, planned path). Frame ids carry the back end's prefix (e.g. 'b0/')."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pybullet as pb
from geometry_msgs.msg import Point, TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from myriad_sim.frames import WORLD, Transform

if TYPE_CHECKING:
    from myriad_sim.world import World

# Kept for late subscribers (RViz started after the back end), as robot_state_publisher and tf_static do.
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Open gripper: distance between the fingers (m).
GRIPPER_OPENING = 0.14
# Colours of a grasp by outcome: green success, red failure.
OUTCOME_COLOURS = {True: (0.1, 0.8, 0.2, 0.9), False: (0.9, 0.15, 0.1, 0.9)}


class TfMessages:
    """Builds TFMessages with prefixed frame ids, reusing one TransformStamped per frame pair: constructing
    messages costs 8x more than updating them, and TF is published at tens of hertz."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._msgs: dict[tuple[str, str], TransformStamped] = {}

    def __call__(self, transforms: Iterable[Transform], stamp) -> TFMessage:
        out = []
        for t in transforms:
            m = self._msgs.get((t.parent, t.child))
            if m is None:
                m = self._msgs[t.parent, t.child] = TransformStamped(child_frame_id=self.prefix + t.child)
                m.header.frame_id = self.prefix + t.parent
            m.header.stamp = stamp
            tr, r = m.transform.translation, m.transform.rotation
            tr.x, tr.y, tr.z = (float(v) for v in t.position)
            r.x, r.y, r.z, r.w = (float(v) for v in t.orientation)
            out.append(m)
        return TFMessage(transforms=out)


class PointClouds:
    """XYZ + packed RGB points of every `stride`-th pixel of a depth image in the camera optical frame
    (background left out), with the pixel-centre convention of Camera.deproject; pixel rays computed once."""

    FIELDS = [
        PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, n in enumerate(("x", "y", "z", "rgb"))
    ]

    def __init__(self, k: np.ndarray, height: int, width: int, far: float, stride: int) -> None:
        vs, us = np.mgrid[0:height:stride, 0:width:stride]
        self.rx = ((us + 0.5 - k[0, 2]) / k[0, 0]).astype(np.float32)
        self.ry = ((vs + 0.5 - k[1, 2]) / k[1, 1]).astype(np.float32)
        self.stride, self.limit = stride, far * 0.999

    def __call__(self, depth: np.ndarray, rgb: np.ndarray, header) -> PointCloud2:
        s = self.stride
        d = depth[::s, ::s]
        keep = d < self.limit
        z = d[keep]
        colour = rgb[::s, ::s][keep].astype(np.uint32)
        points = np.empty(z.size, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
        points["x"], points["y"], points["z"] = self.rx[keep] * z, self.ry[keep] * z, z
        points["rgb"] = (colour[:, 0] << 16) | (colour[:, 1] << 8) | colour[:, 2]
        return PointCloud2(header=header, height=1, width=z.size, fields=self.FIELDS, is_bigendian=False,
                           point_step=16, row_step=16 * z.size, data=points.tobytes(), is_dense=True)  # fmt: skip


def _colour(rgba: Sequence[float]) -> ColorRGBA:
    return ColorRGBA(r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3]))


def _pose(m: Marker, position: Sequence[float], orientation: Sequence[float] = (0.0, 0.0, 0.0, 1.0)) -> None:
    p, o = m.pose.position, m.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    o.x, o.y, o.z, o.w = (float(v) for v in orientation)


def body_markers(world: World, body: int, frame: str, ns: str, stamp: Any, first_id: int = 0) -> list[Marker]:
    """Mesh (or box/sphere/cylinder) markers of a body's base visuals, locked to the body's frame."""
    out = []
    inertial = pb.getDynamicsInfo(body, -1, physicsClientId=world.client)[3:5]
    for v in world.visual_shapes(body):
        if v[1] != -1:
            continue
        # PyBullet gives a base visual's frame relative to the base's centre of mass.
        pos, orn = pb.multiplyTransforms(*inertial, v[5], v[6])
        m = Marker(ns=ns, id=first_id + len(out), action=Marker.ADD, frame_locked=True)
        m.header.frame_id, m.header.stamp = frame, stamp
        _pose(m, pos, orn)
        m.color = _colour(v[7])
        dims = v[3]
        if v[2] == pb.GEOM_MESH:
            m.type, m.mesh_resource = Marker.MESH_RESOURCE, Path(v[4].decode()).as_uri()
            m.scale.x, m.scale.y, m.scale.z = (float(s) for s in dims)
        elif v[2] == pb.GEOM_BOX:
            m.type = Marker.CUBE
            m.scale.x, m.scale.y, m.scale.z = (float(s) for s in dims)
        elif v[2] == pb.GEOM_SPHERE:
            m.type = Marker.SPHERE
            m.scale.x = m.scale.y = m.scale.z = 2 * float(dims[0])
        elif v[2] == pb.GEOM_CYLINDER:
            m.type = Marker.CYLINDER
            m.scale.x = m.scale.y = 2 * float(dims[1])
            m.scale.z = float(dims[0])
        else:
            continue
        out.append(m)
    return out


def box_lines(lo: Sequence[float], hi: Sequence[float], frame: str, ns: str, stamp: Any) -> Marker:
    """The 12 edges of an axis-aligned box as a LINE_LIST."""
    m = Marker(ns=ns, id=0, type=Marker.LINE_LIST, action=Marker.ADD)
    m.header.frame_id, m.header.stamp = frame, stamp
    m.pose.orientation.w = 1.0
    m.scale.x = 0.004
    m.color = _colour((0.9, 0.9, 0.2, 0.8))
    corners = list(itertools.product(*zip(lo, hi)))
    for a, b in itertools.combinations(corners, 2):
        if sum(x != y for x, y in zip(a, b)) == 1:
            m.points += [Point(x=a[0], y=a[1], z=a[2]), Point(x=b[0], y=b[1], z=b[2])]
    return m


def scene_markers(world: World, prefix: str, stamp: Any) -> MarkerArray:
    """Everything but the robot: fixed models and objects (meshes locked to their TF frames), workspace bounds.
    Starts with DELETEALL, so objects of an earlier attempt disappear."""
    markers = [Marker(action=Marker.DELETEALL)]
    for m in world.spec.models:
        markers += body_markers(world, world.entities[m.name].body, prefix + m.name, m.name, stamp)
    for name in world.object_names():
        markers += body_markers(world, world.entities[name].body, prefix + name, name, stamp)
    spec = world.spec
    markers.append(box_lines(spec.workspace_min, spec.workspace_max, prefix + WORLD, "workspace", stamp))
    return MarkerArray(markers=markers)


def grasp_markers(
    position: Sequence[float],
    orientation: Sequence[float],
    opening: float,
    success: bool | None,
    prefix: str,
    stamp: Any,
) -> MarkerArray:
    """A gripper at the grasp pose (tool frame: z down the fingers, x across the jaws): palm and two fingers,
    green for a success, red for a failure, yellow while the outcome is unknown."""
    colour = _colour(OUTCOME_COLOURS.get(success, (0.95, 0.85, 0.1, 0.9)))
    parts = [  # (offset in the tool frame, size)
        ((0.0, 0.0, -0.085), (opening + 0.02, 0.02, 0.02)),
        ((-opening / 2, 0.0, -0.04), (0.01, 0.02, 0.09)),
        ((opening / 2, 0.0, -0.04), (0.01, 0.02, 0.09)),
    ]
    out = []
    for i, (offset, size) in enumerate(parts):
        m = Marker(ns="grasp", id=i, type=Marker.CUBE, action=Marker.ADD, color=colour)
        m.header.frame_id, m.header.stamp = prefix + WORLD, stamp
        pos, _ = pb.multiplyTransforms(position, orientation, offset, (0, 0, 0, 1))
        _pose(m, pos, orientation)
        m.scale.x, m.scale.y, m.scale.z = size
        out.append(m)
    return MarkerArray(markers=out)


def path_marker(points: Iterable[Sequence[float]], prefix: str, stamp: Any) -> MarkerArray:
    """The tool centre's path as a LINE_STRIP in the world frame."""
    m = Marker(ns="path", id=0, type=Marker.LINE_STRIP, action=Marker.ADD)
    m.header.frame_id, m.header.stamp = prefix + WORLD, stamp
    m.pose.orientation.w = 1.0
    m.scale.x = 0.005
    m.color = _colour((0.2, 0.6, 1.0, 0.9))
    m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in points]
    return MarkerArray(markers=[m])
