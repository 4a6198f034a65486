"""The simulated arm and gripper: joint lookup by name, position targets, tool pose."""

from __future__ import annotations

import numpy as np
import pybullet as pb

from myriad_sim.spec import RobotSpec


class Robot:
    def __init__(self, client: int, body: int, spec: RobotSpec):
        self.client, self.body, self.spec = client, body, spec
        names = {
            pb.getJointInfo(body, j, physicsClientId=client)[1].decode(): j
            for j in range(pb.getNumJoints(body, physicsClientId=client))
        }
        links = {
            pb.getJointInfo(body, j, physicsClientId=client)[12].decode(): j
            for j in range(pb.getNumJoints(body, physicsClientId=client))
        }
        g = spec.gripper
        wanted = [*spec.arm_joints, *(f.joint for f in g.fingers), *g.tips, g.wrist_joint]
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ValueError(f"robot model {spec.model} has no joints {missing}; it has {sorted(names)}")
        if spec.ee_link not in links:
            raise ValueError(f"robot model {spec.model} has no link {spec.ee_link!r}; it has {sorted(links)}")
        self.joint_index = names
        self.arm = [names[n] for n in spec.arm_joints]
        self.arm_forces = [spec.max_force] * len(self.arm)
        self.ee = links[spec.ee_link]
        self.fingers = [(names[f.joint], f.open, f.closed) for f in spec.gripper.fingers]
        self.tips = [names[t] for t in spec.gripper.tips]
        self.wrist = names[spec.gripper.wrist_joint]
        info = [pb.getJointInfo(body, j, physicsClientId=client) for j in self.arm]
        self.lower = np.array([i[8] for i in info])
        self.upper = np.array([i[9] for i in info])
        self.gripper_target = 1.0
        self.gripper_force = 10.0

    def reset_joints(self, q: list[float] | np.ndarray) -> None:
        for j, v in zip(self.arm, q):
            pb.resetJointState(self.body, j, float(v), physicsClientId=self.client)
        self.set_arm_targets(q)
        self.set_gripper(1.0, self.gripper_force, reset=True)

    def set_arm_targets(self, q: list[float] | np.ndarray) -> None:
        self.arm_targets = np.array(q, dtype=float)
        pb.setJointMotorControlArray(
            self.body,
            self.arm,
            pb.POSITION_CONTROL,
            targetPositions=self.arm_targets.tolist(),
            forces=self.arm_forces,
            physicsClientId=self.client,
        )

    def set_gripper(self, opening: float, force: float, reset: bool = False) -> None:
        """Command the fingers to an opening in [0, 1] (0 closed, 1 open) with `force` newtons each."""
        self.gripper_target, self.gripper_force = float(np.clip(opening, 0.0, 1.0)), float(force)
        c = self.client
        for j, open_, closed in self.fingers:
            target = closed + self.gripper_target * (open_ - closed)
            if reset:
                pb.resetJointState(self.body, j, target, physicsClientId=c)
            pb.setJointMotorControl2(
                self.body, j, pb.POSITION_CONTROL, targetPosition=target, force=force, physicsClientId=c
            )
        tip_force = self.spec.gripper.tip_force
        for j in self.tips:
            pb.setJointMotorControl2(
                self.body, j, pb.POSITION_CONTROL, targetPosition=0.0, force=tip_force, physicsClientId=c
            )
        pb.setJointMotorControl2(
            self.body,
            self.wrist,
            pb.POSITION_CONTROL,
            targetPosition=0.0,
            force=self.spec.max_force,
            physicsClientId=c,
        )

    def gripper_opening(self) -> float:
        """Current opening in [0, 1], mean over the fingers."""
        vals = []
        for j, open_, closed in self.fingers:
            q = pb.getJointState(self.body, j, physicsClientId=self.client)[0]
            vals.append((q - closed) / (open_ - closed))
        return float(np.mean(vals))

    def gripper_lift_force(self) -> float:
        """Upward contact force on the gripper (N) from anything but the robot: a wrist force sensor's Fz."""
        total = 0.0
        for p in pb.getContactPoints(bodyA=self.body, physicsClientId=self.client):
            if p[2] != self.body and p[3] > self.ee:  # normal force times the normal's z (it points at us)
                total += p[9] * p[7][2]
        return total

    def joint_positions(self) -> np.ndarray:
        return np.array([s[0] for s in pb.getJointStates(self.body, self.arm, physicsClientId=self.client)])

    def joint_velocities(self) -> np.ndarray:
        return np.array([s[1] for s in pb.getJointStates(self.body, self.arm, physicsClientId=self.client)])

    def all_joint_states(self) -> tuple[list[str], list[float], list[float], list[float]]:
        """Names, positions, velocities, efforts of every movable joint (for joint_states)."""
        names, pos, vel, eff = [], [], [], []
        for name, j in self.joint_index.items():
            if pb.getJointInfo(self.body, j, physicsClientId=self.client)[2] == pb.JOINT_FIXED:
                continue
            q, qd, _, tau = pb.getJointState(self.body, j, physicsClientId=self.client)
            names.append(name)
            pos.append(q)
            vel.append(qd)
            eff.append(tau)
        return names, pos, vel, eff

    def tool_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Position and quaternion (x, y, z, w) of the gripper centre in the world."""
        state = pb.getLinkState(
            self.body, self.ee, computeForwardKinematics=True, physicsClientId=self.client
        )
        pos, orn = pb.multiplyTransforms(state[4], state[5], self.spec.tool_offset, (0, 0, 0, 1))
        return np.array(pos), np.array(orn)
