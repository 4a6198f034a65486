"""The Experiment's in-process back end: a World, the planner's pure modules, the controllers' followers."""

from __future__ import annotations

from typing import Any

from myriad.types import CameraImage, MotionError, ObjectInfo, Quat, Vec3
from myriad_cle.sim import LocalSim, RobotState
from myriad_control.gripper import command_gripper
from myriad_control.trajectory import follow, make_trajectory, message_times
from myriad_grasping.episode import MoveResult
from myriad_interfaces.msg import ResultCode
from myriad_runtime import workspace
from myriad_sim import recording
from myriad_sim.camera import DepthView
from myriad_sim.spec import WorldSpec
from myriad_sim.world import World


class LocalBackend:
    """`trajectory_rate` > 0 records each attempt as the sim server does (myriad_sim.recording), camera frames at
    `trajectory_camera_rate` (0: none) of `trajectory_camera_size` pixels a side."""

    def __init__(self, spec: WorldSpec, renderer: str = "auto", trajectory_rate: float = 0.0,
                 trajectory_camera_rate: float = 0.0, trajectory_camera_size: int = 128):  # fmt: skip
        self.world = World(spec, renderer)
        try:
            recording.attach(self.world, trajectory_rate, trajectory_camera_rate, trajectory_camera_size)
        except ValueError:
            self.world.close()
            raise
        self.spec = spec
        self._planner: Any = None

    def reset(self, seed: int, object_count: int) -> None:
        self.world.reset(seed, object_count)

    def spawn(
        self,
        name: str,
        source: str,
        position: Vec3,
        orientation: Quat,
        scale: float,
        mass: float,
        fixed: bool,
    ) -> None:
        self.world.spawn(name, source, position, orientation, scale, mass, fixed)

    def delete(self, name: str) -> None:
        self.world.delete(name)

    def objects(self) -> list[ObjectInfo]:
        return [
            ObjectInfo(s.name, s.source, s.body, tuple(s.position), tuple(s.orientation))
            for s in self.world.object_states()
        ]

    def capture(self) -> CameraImage:
        f = self.world.capture()
        return CameraImage(f.rgb, f.depth, f.segmentation, self.world.camera.intrinsics, self.world.camera)

    def robot_state(self) -> RobotState:
        return LocalSim(self.world).observe()

    def planner(self) -> Any:
        """myriad_planning's Planner on a planning copy of the world (built on first use)."""
        if self._planner is None:
            from myriad_planning.config import load_config
            from myriad_planning.planner import Planner
            from myriad_planning.scene import Scene

            path = workspace() / "config" / "planning.yaml"
            config = load_config(path)
            self._planner = Planner(Scene(self.spec, config), config)
        return self._planner

    def move(
        self,
        goal_type: str,
        joints: Any = (),
        pose: tuple[Vec3, Quat] | None = None,
        seed: int = 0,
        max_contact_force: float = 0.0,
    ) -> bool:
        """Plan and execute (a guarded move when max_contact_force > 0); returns whether it stopped on contact."""
        from myriad_planning.scene import ObjectState
        from myriad_planning.timing import robot_trajectory

        planner, robot = self.planner(), self.world.robot
        planner.scene.sync([ObjectState(o.name, o.source, o.position, o.orientation) for o in self.objects()])
        plan = planner.plan(goal_type, robot.joint_positions(), joints, pose, seed=seed)
        if not plan.success:
            raise MotionError(f"{goal_type} motion: planning failed: {plan.message}")
        traj = robot_trajectory(plan.path, self.spec.robot, planner.config)
        times = message_times(traj.times)  # as a back end's controller receives them
        goal = make_trajectory(robot, self.spec.robot.arm_joints, times, traj.positions, traj.velocities)
        out = follow(robot, goal, self.spec.timestep, self.world.step, max_contact_force=max_contact_force)
        if out.error_code != ResultCode.SUCCESS:
            raise MotionError(f"{goal_type} motion: execution failed: {out.message}", planned=True)
        return out.contact

    def gripper(self, opening: float, force: float) -> float:
        return command_gripper(self.world.robot, opening, force, self.spec.timestep, self.world.step).position

    def sim(self, object_count: int) -> LocalSim:
        return LocalSim(self.world, object_count)

    def close(self) -> None:
        if self._planner is not None:
            self._planner.scene.world.close()
        self.world.close()


class LocalGraspBackend:
    """The grasp sampler's backend protocol (myriad_grasping.episode.GraspBackend) over a LocalBackend: the same
    attempt script as a back end's nodes run, by direct library calls in this process."""

    def __init__(self, local: LocalBackend):
        self.local = local

    def reset(self, seed: int, object_count: int) -> list[tuple[str, str, Vec3]]:
        return [(s.name, s.source, tuple(s.position)) for s in self.local.world.reset(seed, object_count)]

    def capture(self) -> Any:
        return self.local.world.capture()

    def view(self, images: Any) -> DepthView:
        bodies = {s.name: s.body for s in self.local.world.object_states()}
        return DepthView(self.local.world.camera, images.depth, images.segmentation, bodies, images.rgb)

    def move(
        self, kind: str, position: Vec3, orientation: Quat, seed: int, max_contact_force: float = 0.0
    ) -> MoveResult:
        try:
            contact = self.local.move(kind, pose=(position, orientation), seed=seed,
                                      max_contact_force=max_contact_force)  # fmt: skip
        except MotionError as exc:
            return MoveResult(False, str(exc), refused=not exc.planned)
        return MoveResult(True, contact=contact)

    def gripper(self, opening: float, force: float) -> tuple[float, bool]:
        return self.local.gripper(opening, force), False

    def object_positions(self) -> dict[str, Vec3]:
        return {s.name: tuple(s.position) for s in self.local.world.object_states()}

    def trajectory(self) -> recording.Recording | None:
        recorder = self.local.world.recorder
        return None if recorder is None else recorder.recording()
