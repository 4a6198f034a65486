"""What the engine needs from a simulator (SimAdapter), and the adapter for an in-process World."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pybullet as pb

from myriad_sim.camera import Frame
from myriad_sim.description import load_robot_body
from myriad_sim.robot import Robot
from myriad_sim.spec import RobotSpec, WorldSpec
from myriad_sim.world import World


@dataclass(frozen=True)
class RobotState:
    """The arm after a step: joints in the robot's arm order, tool centre pose, gripper opening (0..1)."""

    sim_time: float
    joint_names: tuple[str, ...]
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    ee_position: np.ndarray
    ee_orientation: np.ndarray  # quaternion x, y, z, w
    gripper: float


class SimAdapter(Protocol):
    """A simulator the engine can drive in lockstep: an in-process World or a remote sim server."""

    spec: WorldSpec

    def reset(self, seed: int) -> None: ...
    def observe(self) -> RobotState: ...
    def step(self, steps: int, arm: Mapping[str, float] | None, gripper: float | None) -> RobotState: ...
    def capture(self) -> Frame: ...
    def contacts(self) -> list[str]: ...


class LocalSim:
    """SimAdapter over an in-process World; reset rebuilds it and drops `object_count` objects from the seed."""

    def __init__(self, world: World, object_count: int = 0):
        self.world, self.spec, self.object_count = world, world.spec, object_count

    def reset(self, seed: int) -> None:
        self.world.reset(seed, self.object_count)

    def observe(self) -> RobotState:
        r = self.world.robot
        pos, orn = r.tool_pose()
        return RobotState(
            self.world.sim_time,
            r.spec.arm_joints,
            r.joint_positions(),
            r.joint_velocities(),
            pos,
            orn,
            r.gripper_opening(),
        )

    def step(self, steps: int, arm: Mapping[str, float] | None, gripper: float | None) -> RobotState:
        r = self.world.robot
        if arm:
            targets = r.arm_targets.copy()
            for name, q in arm.items():
                targets[r.spec.arm_joints.index(name)] = q
            r.set_arm_targets(targets)
        if gripper is not None:
            r.set_gripper(gripper, r.gripper_force)
        self.world.step(steps)
        return self.observe()

    def capture(self) -> Frame:
        return self.world.capture()

    def contacts(self) -> list[str]:
        """Names of the entities any robot link (gripper included) touches."""
        w = self.world
        bodies = {e.body: e.name for e in w.entities.values() if e.name != "robot"}
        touching = {p[2] for p in pb.getContactPoints(bodyA=w.robot.body, physicsClientId=w.client)}
        return sorted(bodies[b] for b in touching if b in bodies)


def gripper_opening(spec: RobotSpec, positions: Mapping[str, float]) -> float:
    """Mean finger opening in [0, 1] from finger joint positions by name."""
    return float(
        np.mean([(positions[f.joint] - f.closed) / (f.open - f.closed) for f in spec.gripper.fingers])
    )


class RobotModel:
    """A kinematic copy of the robot on its own PyBullet client, for Jacobians (the sim is left untouched)."""

    def __init__(self, spec: RobotSpec):
        self.client = pb.connect(pb.DIRECT)
        orientation = pb.getQuaternionFromEuler(spec.rpy)
        body = load_robot_body(self.client, spec.model, spec.position, orientation)
        self.robot = Robot(self.client, body, spec)
        self.movable = [
            j
            for j in range(pb.getNumJoints(body, physicsClientId=self.client))
            if pb.getJointInfo(body, j, physicsClientId=self.client)[2] != pb.JOINT_FIXED
        ]
        self.columns = [self.movable.index(j) for j in self.robot.arm]

    def jacobian(self, q: Sequence[float]) -> np.ndarray:
        """6 x dof Jacobian (linear rows, then angular) of the tool centre at arm configuration q."""
        r = self.robot
        for j, v in zip(r.arm, q):
            pb.resetJointState(r.body, j, float(v), physicsClientId=self.client)
        full = [pb.getJointState(r.body, j, physicsClientId=self.client)[0] for j in self.movable]
        zeros = [0.0] * len(full)
        lin, ang = pb.calculateJacobian(
            r.body, r.ee, list(r.spec.tool_offset), full, zeros, zeros, physicsClientId=self.client
        )
        return np.vstack([np.asarray(lin)[:, self.columns], np.asarray(ang)[:, self.columns]])

    def close(self) -> None:
        if pb.isConnected(self.client):
            pb.disconnect(self.client)
