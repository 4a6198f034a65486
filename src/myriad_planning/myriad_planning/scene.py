"""The planning scene: a PyBullet copy of the world kept in sync with the sim, and collision checks on it."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pybullet as pb

from myriad_planning.config import PlanningConfig
from myriad_planning.kinematics import Kinematics
from myriad_sim.camera import Camera
from myriad_sim.spec import CameraSpec, WorldSpec
from myriad_sim.world import SpawnError, World

log = logging.getLogger("myriad_planning")

# Objects loaded into the planning world before it is made anew: PyBullet keeps ~50 kB of each loaded body after
# removeBody (measured), so a scene loading an attempt's objects grew by ~0.4 MB per attempt. A new world (40 ms CPU)
# every 500 loads (~60 attempts) bounds that to ~25 MB.
RENEW_LOADS = 500
MAX_LINKS = 127  # PyBullet's limit of links per multibody: voxel boxes are split over several bodies


@dataclass(frozen=True)
class ObjectState:
    """A movable entity as the sim reports it."""

    name: str
    source: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)


def camera_pose(spec: CameraSpec) -> np.ndarray:
    """4x4 world-from-optical-frame transform (x right, y down, z forward) of a camera spec."""
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = Camera(spec).rotation(), spec.position
    return pose


def depth_points(
    depth: np.ndarray,
    known: np.ndarray,
    K: np.ndarray,
    pose: np.ndarray,
    stride: int,
    tol: float,
    step: float,
    fill: float,
) -> np.ndarray:
    """World points of surfaces closer than the known scene, plus the space hidden behind them (up to `fill`)."""
    d, k = depth[::stride, ::stride].astype(float), known[::stride, ::stride]
    v, u = np.mgrid[0 : depth.shape[0] : stride, 0 : depth.shape[1] : stride]
    mask = np.isfinite(d) & (d > 0) & (d < k - tol)
    d, k, u, v = d[mask], k[mask], u[mask] + 0.5, v[mask] + 0.5
    rays = np.column_stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(d)])
    end = np.minimum(d + fill, k - tol)
    offsets = np.arange(0.0, max(fill, 0.0) + step, step)
    z = d[:, None] + offsets[None, :]
    keep = z <= np.maximum(end, d)[:, None]
    cam = (rays[:, None, :] * z[:, :, None])[keep]
    return cam @ pose[:3, :3].T + pose[:3, 3]


def voxel_columns(points: np.ndarray, size: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Occupied voxels of `points`, merged into vertical runs: (centre, half extents) boxes."""
    if len(points) == 0:
        return []
    cells = np.unique(np.floor(points / size).astype(np.int64), axis=0)
    cells = cells[np.lexsort((cells[:, 2], cells[:, 1], cells[:, 0]))]
    new_run = np.ones(len(cells), bool)
    new_run[1:] = (np.any(cells[1:, :2] != cells[:-1, :2], axis=1)) | (cells[1:, 2] != cells[:-1, 2] + 1)
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], len(cells)) - 1
    boxes = []
    for s, e in zip(starts, ends):
        lo, hi = cells[s] * size, (cells[e] + 1) * size
        boxes.append(((lo + hi) / 2, (hi - lo) / 2))
    return boxes


class Scene:
    """A planning copy of the world (robot, table, tray, objects, voxel obstacles) with collision queries."""

    def __init__(self, spec: WorldSpec, config: PlanningConfig):
        self.spec, self.config = spec, config
        self.fixed = {"robot"} | {m.name for m in spec.models}
        self._new_world()

    def _new_world(self) -> None:
        """A fresh planning world (robot and fixed models, no objects) and what derives from its bodies."""
        self.world = World(self.spec, renderer="tiny")
        self.client, self.robot = self.world.client, self.world.robot
        cfg = self.config
        self.kinematics = Kinematics(self.robot, cfg.position_tolerance, cfg.orientation_tolerance)
        self.voxel_bodies: list[int] = []
        self.voxel_count = 0
        self._box_shapes: dict[tuple[float, ...], int] = {}
        self.ignored: set[int] = set()
        self.loads = 0  # objects loaded into this world
        self._init_allowed()

    def _init_allowed(self) -> None:
        """Allowed contacts: adjacent links, links touching at home, gripper internals, base against the table."""
        b, c = self.robot.body, self.client
        n = pb.getNumJoints(b, physicsClientId=c)
        parent = {j: pb.getJointInfo(b, j, physicsClientId=c)[16] for j in range(n)}
        self.kinematics.set_joints(self.robot.spec.home)
        touching = {
            (p[3], p[4]) for p in pb.getClosestPoints(b, b, self.config.self_padding, physicsClientId=c)
        }
        self.gripper_links = set(range(self.robot.ee + 1, n))
        self.self_pairs = [
            (i, j)
            for i, j in itertools.combinations(range(-1, n), 2)
            if (i, j) not in touching and parent.get(j) != i and not {i, j} <= self.gripper_links
        ]
        self._links = range(-1, n)  # base and links: rows of the bounding boxes in _near_self_pairs
        self._pair_rows = np.array(self.self_pairs, dtype=int).reshape(-1, 2) + 1
        self.allowed_static = {
            (p[3], name)
            for name in self.fixed - {"robot"}
            for p in pb.getClosestPoints(
                b, self.world.entities[name].body, self.config.padding, physicsClientId=c
            )
        }

    # -- keeping in sync ---------------------------------------------------------------------------------------------

    def sync(self, states: Iterable[ObjectState]) -> None:
        """Make the movable objects match the sim's: spawn new ones, move known ones, remove vanished ones. Past
        RENEW_LOADS objects loaded, in a new planning world: PyBullet's removeBody does not free what loading took."""
        if self.loads >= RENEW_LOADS:
            self.world.close()
            self._new_world()
        seen = set()
        for s in states:
            if s.name in self.fixed:
                continue
            e = self.world.entities.get(s.name)
            if e is not None and e.source != s.source:
                self.world.delete(s.name)
                e = None
            if e is None:
                try:
                    e = self.world.spawn(
                        s.name, s.source, s.position, s.orientation, fixed=True, check_overlap=False
                    )
                except SpawnError as exc:
                    log.warning("planning scene skips %s: %s", s.name, exc)
                    continue
                self.loads += 1
            pb.resetBasePositionAndOrientation(e.body, s.position, s.orientation, physicsClientId=self.client)
            seen.add(s.name)
        for name in set(self.world.object_names()) - seen:
            self.world.delete(name)

    def update_from_depth(
        self, depth: np.ndarray, K: np.ndarray, pose: np.ndarray, q: Sequence[float]
    ) -> int:
        """Replace the voxel obstacles by what a depth image shows beyond the known scene (robot at q, table, tray).

        depth: HxW metres along the optical axis; K: 3x3 intrinsics; pose: world-from-optical-frame (4x4).
        Returns the number of boxes built.
        """
        self.clear_voxels()
        known = self._render_known(K, pose, depth.shape, q)
        depth = np.where(depth >= self.world.spec.camera.far * 0.999, np.inf, depth)  # background
        cfg = self.config
        pts = depth_points(
            depth, known, K, pose, cfg.pixel_stride, cfg.known_tolerance, cfg.voxel_size / 2, cfg.fill_depth
        )
        pts = pts[
            np.all((pts >= self.world.spec.workspace_min) & (pts <= self.world.spec.workspace_max), axis=1)
        ]
        boxes = voxel_columns(pts, cfg.voxel_size)
        for k in range(0, len(boxes), MAX_LINKS):
            self.voxel_bodies.append(self._box_body(boxes[k : k + MAX_LINKS]))
        self.voxel_count = len(boxes)
        return len(boxes)

    def _render_known(
        self, K: np.ndarray, pose: np.ndarray, shape: tuple[int, ...], q: Sequence[float]
    ) -> np.ndarray:
        """Depth of the planning scene's fixed bodies and robot (objects hidden) seen by the given camera."""
        h, w = shape
        if abs(K[0, 0] - K[1, 1]) > 1e-6 * K[0, 0] or abs(K[0, 2] - w / 2) > 1 or abs(K[1, 2] - h / 2) > 1:
            raise ValueError(
                f"depth obstacles need square pixels and a centred principal point, got K={K.tolist()}"
            )
        near, far = self.world.spec.camera.near, self.world.spec.camera.far
        spec = CameraSpec(
            position=tuple(pose[:3, 3]),
            target=tuple(pose[:3, 3] + pose[:3, 2]),
            up=tuple(-pose[:3, 1]),
            fov_deg=float(np.degrees(2 * np.arctan(h / 2 / K[1, 1]))),
            width=w,
            height=h,
            near=near,
            far=far,
        )
        hidden = [self.world.entities[n].body for n in self.world.object_names()]
        poses = [pb.getBasePositionAndOrientation(body, physicsClientId=self.client) for body in hidden]
        for body in hidden:
            pb.resetBasePositionAndOrientation(body, (0, 0, -100), (0, 0, 0, 1), physicsClientId=self.client)
        self.kinematics.set_joints(q)
        known = Camera(spec).render(self.client, pb.ER_TINY_RENDERER).depth.astype(float)
        for body, (pos, orn) in zip(hidden, poses):
            pb.resetBasePositionAndOrientation(body, pos, orn, physicsClientId=self.client)
        known[known >= far * 0.999] = np.inf
        return known

    def _box_body(self, boxes: list[tuple[np.ndarray, np.ndarray]]) -> int:
        shapes = []
        for _, half in boxes:
            key = tuple(np.round(half, 6))
            if key not in self._box_shapes:
                self._box_shapes[key] = pb.createCollisionShape(
                    pb.GEOM_BOX, halfExtents=list(key), physicsClientId=self.client
                )
            shapes.append(self._box_shapes[key])
        n = len(boxes)
        return pb.createMultiBody(
            0,
            -1,
            -1,
            (0, 0, 0),
            linkMasses=[0] * n,
            linkCollisionShapeIndices=shapes,
            linkVisualShapeIndices=[-1] * n,
            linkPositions=[c.tolist() for c, _ in boxes],
            linkOrientations=[(0, 0, 0, 1)] * n,
            linkInertialFramePositions=[(0, 0, 0)] * n,
            linkInertialFrameOrientations=[(0, 0, 0, 1)] * n,
            linkParentIndices=[0] * n,
            linkJointTypes=[pb.JOINT_FIXED] * n,
            linkJointAxis=[(0, 0, 1)] * n,
            physicsClientId=self.client,
        )

    def clear_voxels(self) -> None:
        for body in self.voxel_bodies:
            pb.removeBody(body, physicsClientId=self.client)
        self.voxel_bodies, self.voxel_count = [], 0

    # -- collision checks --------------------------------------------------------------------------------------------

    def ignore_held(self, q: Sequence[float]) -> list[str]:
        """Objects within padding of the gripper at q count as held: they are left out of checks until the next call."""
        self.kinematics.set_joints(q)
        self.ignored = set()
        held = []
        for name in self.world.object_names():
            body = self.world.entities[name].body
            pts = pb.getClosestPoints(self.robot.body, body, self.config.padding, physicsClientId=self.client)
            if any(p[3] in self.gripper_links for p in pts):
                self.ignored.add(body)
                held.append(name)
        return held

    def collision(
        self, q: Sequence[float], objects_vs_gripper: bool = True, gripper_contact: bool = False
    ) -> str | None:
        """What the robot at q collides with (a short description), or None when q is free.

        gripper_contact: the allowed-collision matrix of a grasp's descent, close and lift: the gripper may touch
        anything but the robot itself (tray floor and walls, the target, objects around it); the arm may not."""
        b, c, pad = self.robot.body, self.client, self.config.padding
        self.kinematics.set_joints(q)
        for i, j in self._near_self_pairs():
            if pb.getClosestPoints(
                b, b, self.config.self_padding, linkIndexA=i, linkIndexB=j, physicsClientId=c
            ):
                return f"self: links {i} and {j}"
        for name, e in self.world.entities.items():
            if name == "robot" or e.body in self.ignored:
                continue
            static, is_object = name in self.fixed, name not in self.fixed
            for p in pb.getClosestPoints(b, e.body, pad, physicsClientId=c):
                if static and (p[3], name) in self.allowed_static:
                    continue
                if (gripper_contact or (is_object and not objects_vs_gripper)) and p[3] in self.gripper_links:
                    continue
                return f"link {p[3]} and {name}"
        for body in self.voxel_bodies:
            for p in pb.getClosestPoints(b, body, pad, physicsClientId=c):
                if not (gripper_contact and p[3] in self.gripper_links):
                    return "depth obstacle"
        return None

    def _near_self_pairs(self) -> list[tuple[int, int]]:
        """The self-collision pairs, in order, whose links' bounding boxes lie within self_padding: the others
        cannot touch. One box per link instead of one distance query per pair: 2.3x cheaper self-checks, the
        same answers (20,000 random and near-home configurations, 2,646 of them in self-collision)."""
        b, c = self.robot.body, self.client
        boxes = np.array([pb.getAABB(b, k, physicsClientId=c) for k in self._links])
        lo, hi, a, z = boxes[:, 0], boxes[:, 1], self._pair_rows[:, 0], self._pair_rows[:, 1]
        gap = np.maximum(lo[a] - hi[z], lo[z] - hi[a]).max(axis=1)
        return [self.self_pairs[k] for k in np.flatnonzero(gap <= self.config.self_padding)]

    def is_valid(self, q: Sequence[float], objects_vs_gripper: bool = True) -> bool:
        return self.collision(q, objects_vs_gripper) is None

    def within_limits(self, q: Sequence[float]) -> bool:
        q = np.asarray(q)
        return len(q) == len(self.robot.arm) and bool(
            np.all(q >= self.robot.lower) and np.all(q <= self.robot.upper)
        )
