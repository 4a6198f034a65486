"""SimAdapter over a running sim server: step_simulation, reset_world and capture_images of its namespace."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from sensor_msgs.msg import JointState

from myriad_cle.sim import RobotState, gripper_opening
from myriad_interfaces.srv import CaptureImages, ResetWorld, StepSimulation
from myriad_runtime.calls import call_service
from myriad_sim.camera import Frame
from myriad_sim.clock import episode_time
from myriad_sim.image_codec import imgmsg_to_cv2
from myriad_sim.spec import WorldSpec


class RemoteSim:
    """Blocking service calls (myriad_runtime.calls) from a thread other than the executor's (the node spins).

    `spec` must be the sim server's world file (for the physics step and the robot's joint and finger names).
    Its sim time is the episode's (0 at the last reset made through it; the sim server's clock before that).
    """

    def __init__(self, node: Node, spec: WorldSpec, object_count: int = 0, timeout: float = 30.0):
        self.node, self.spec, self.object_count, self.timeout = node, spec, object_count, timeout
        self.step_cli = node.create_client(StepSimulation, "step_simulation")
        self.reset_cli = node.create_client(ResetWorld, "reset_world")
        self.capture_cli = node.create_client(CaptureImages, "capture_images")
        self.episode_start = Time()

    def _call(self, client, request):
        return call_service(client, request, self.timeout, check=True)

    def reset(self, seed: int, object_count: int | None = None) -> ResetWorld.Response:
        count = self.object_count if object_count is None else object_count
        res = self._call(self.reset_cli, ResetWorld.Request(seed=seed, object_count=count))
        self.episode_start = res.episode_start
        return res

    def observe(self) -> RobotState:
        return self.step(0, None, None)

    def step(self, steps: int, arm: Mapping[str, float] | None, gripper: float | None) -> RobotState:
        req = StepSimulation.Request(steps=steps, gripper=-1.0 if gripper is None else float(gripper))
        if arm:
            req.command = JointState(name=list(arm), position=[float(v) for v in arm.values()])
        res = self._call(self.step_cli, req)
        js = res.joint_state
        pos = dict(zip(js.name, js.position))
        vel = dict(zip(js.name, js.velocity))
        names = self.spec.robot.arm_joints
        p, o = res.end_effector.position, res.end_effector.orientation
        return RobotState(
            episode_time(res.sim_time, self.episode_start, self.spec.timestep),
            names,
            np.array([pos[n] for n in names]),
            np.array([vel[n] for n in names]),
            np.array([p.x, p.y, p.z]),
            np.array([o.x, o.y, o.z, o.w]),
            gripper_opening(self.spec.robot, pos),
        )

    def capture(self) -> Frame:
        res = self._call(self.capture_cli, CaptureImages.Request())
        return Frame(imgmsg_to_cv2(res.rgb), imgmsg_to_cv2(res.depth), imgmsg_to_cv2(res.segmentation))

    def contacts(self) -> list[str]:
        raise NotImplementedError(
            "contacts are not available from a remote sim server: StepSimulation.srv has no contacts field"
        )
