"""Motion planning with OMPL over the 7 arm joints: joint goals, pose goals (via IK) and Cartesian segments."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pybullet as pb
from ompl import base as ob
from ompl import geometric as og
from ompl import util as ou

from myriad_interfaces.msg import ResultCode
from myriad_planning.config import PLANNERS, PlanningConfig
from myriad_planning.kinematics import orientation_error
from myriad_planning.scene import Scene
from myriad_sim.config import finite_array, shown
from myriad_sim.robot import Robot

SUCCESS, PLANNING_FAILED, INVALID_GOAL = (
    ResultCode.SUCCESS,
    ResultCode.PLANNING_FAILED,
    ResultCode.INVALID_GOAL,
)
TIMED_OUT, NO_IK_SOLUTION = ResultCode.TIMED_OUT, ResultCode.NO_IK_SOLUTION
OPTIMIZING = ("BITstar",)
LIMIT_SLACK = 0.1  # rad: start states this far outside a joint limit are clipped (the sim enforces limits)

ou.setLogLevel(ou.LOG_WARN)


@dataclass
class PlanResult:
    code: int
    message: str
    path: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))  # (N, 7) waypoints, empty on failure
    planning_time: float = 0.0
    planner: str = ""

    @property
    def success(self) -> bool:
        return self.code == SUCCESS

    @property
    def path_length(self) -> float:
        """Joint-space length (rad) of the path."""
        return float(np.linalg.norm(np.diff(self.path, axis=0), axis=1).sum()) if len(self.path) > 1 else 0.0


def seed_ompl(seed: int) -> None:
    """Reseed OMPL's generator of RNG seeds: OMPL objects created afterwards draw the same random numbers."""
    level = ou.getLogLevel()
    ou.setLogLevel(
        ou.LOG_NONE
    )  # OMPL complains that reseeding after the first draw is not deterministic: it is
    ou.RNG.setSeed(1 + seed % (2**31 - 2))  # for objects created after this call, which is how we use it
    ou.setLogLevel(level)


def pose_problem(position: Sequence[float], orientation: Sequence[float]) -> str:
    """What is wrong with a pose goal (NaN would hang PyBullet's IK), or "" when nothing is."""
    p, o = finite_array(position, (3,)), finite_array(orientation, (4,))
    if p is None or o is None:
        return (
            "pose goal: expected a finite position (x, y, z) and quaternion (x, y, z, w), "
            f"got {shown(position)}, {shown(orientation)}"
        )
    if float(np.linalg.norm(o)) < 1e-6:
        return "pose goal: the orientation is a zero quaternion"
    return ""


def _timed(method: Callable[..., PlanResult]) -> Callable[..., PlanResult]:
    """Fill in planning_time (wall time of the whole call) on results that do not carry one."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs) -> PlanResult:
        t0 = time.monotonic()
        result = method(*args, **kwargs)
        result.planning_time = result.planning_time or time.monotonic() - t0
        return result

    return wrapper


class Planner:
    """Plans on a Scene. RRTConnect plans are reproducible for a seed; PRM and BIT* depend on timing."""

    def __init__(self, scene: Scene, config: PlanningConfig):
        self.scene, self.config = scene, config
        self.dof = len(scene.robot.arm)

    @property
    def robot(self) -> Robot:
        """The scene's planning robot (of its current world: the scene makes its world anew now and then)."""
        return self.scene.robot

    def plan(
        self,
        goal_type: str,
        start: Sequence[float],
        joint_goal: Sequence[float] = (),
        pose: tuple[Sequence[float], Sequence[float]] | None = None,
        planner: str = "",
        time_limit: float = 0.0,
        seed: int = 0,
    ) -> PlanResult:
        """Dispatch on goal_type "joints" | "pose" | "cartesian" | "cartesian_contact" (as PlanMotion.srv)."""
        if goal_type == "joints":
            return self.plan_joints(start, joint_goal, planner, time_limit, seed)
        if goal_type in ("pose", "cartesian", "cartesian_contact") and pose is not None:
            if goal_type == "pose":
                return self.plan_pose(start, pose[0], pose[1], planner, time_limit, seed)
            return self.plan_cartesian(start, pose[0], pose[1], goal_type == "cartesian_contact")
        return PlanResult(
            INVALID_GOAL,
            f"goal_type {goal_type!r}: expected joints, pose, cartesian or cartesian_contact (with a pose)",
        )

    # -- request checks ----------------------------------------------------------------------------------------------

    def _start(self, start: Sequence[float], gripper_contact: bool = False) -> tuple[np.ndarray | None, str]:
        q = finite_array(start, (self.dof,))
        lo, hi = self.robot.lower, self.robot.upper
        if q is None:
            return None, f"start: expected {self.dof} finite joint positions, got {shown(start)}"
        if np.any(q < lo - LIMIT_SLACK) or np.any(q > hi + LIMIT_SLACK):
            return None, f"start: {np.round(q, 3).tolist()} is outside the joint limits"
        q = np.clip(q, lo, hi)
        self.scene.ignore_held(q)
        why = self.scene.collision(q, gripper_contact=gripper_contact)
        return (None, f"start state in collision ({why})") if why else (q, "")

    def _settings(self, planner: str, time_limit: float) -> tuple[str, float]:
        return (
            planner or self.config.default_planner,
            time_limit if time_limit > 0 else self.config.time_limit,
        )

    # -- goals -------------------------------------------------------------------------------------------------------

    @_timed
    def plan_joints(
        self,
        start: Sequence[float],
        goal: Sequence[float],
        planner: str = "",
        time_limit: float = 0.0,
        seed: int = 0,
    ) -> PlanResult:
        """Collision-free path from start to a joint goal."""
        t0 = time.monotonic()
        name, limit = self._settings(planner, time_limit)
        q0, why = self._start(start)
        if q0 is None:
            return PlanResult(PLANNING_FAILED, why, planner=name)
        q1 = finite_array(goal, (self.dof,))
        if q1 is None or not self.scene.within_limits(q1):
            return PlanResult(
                INVALID_GOAL,
                f"joint goal {shown(goal)} is not {self.dof} finite joint positions within limits",
                planner=name,
            )
        why = self.scene.collision(q1)
        if why:
            return PlanResult(INVALID_GOAL, f"joint goal in collision ({why})", planner=name)
        return self._solve(q0, q1, name, limit - (time.monotonic() - t0), seed, t0)

    @_timed
    def plan_pose(
        self,
        start: Sequence[float],
        position: Sequence[float],
        orientation: Sequence[float],
        planner: str = "",
        time_limit: float = 0.0,
        seed: int = 0,
    ) -> PlanResult:
        """Collision-free path to the first collision-free IK solution of a gripper-centre pose."""
        t0 = time.monotonic()
        name, limit = self._settings(planner, time_limit)
        why = pose_problem(position, orientation)
        if why:
            return PlanResult(INVALID_GOAL, why, planner=name)
        q0, why = self._start(start)
        if q0 is None:
            return PlanResult(PLANNING_FAILED, why, planner=name)
        rng = np.random.default_rng(seed)
        collided = ""
        for q1 in self.scene.kinematics.solutions(position, orientation, q0, self.config.ik_restarts, rng):
            collided = self.scene.collision(q1) or ""
            if not collided:
                return self._solve(q0, q1, name, limit - (time.monotonic() - t0), seed, t0)
        if collided:
            return PlanResult(
                INVALID_GOAL, f"every IK solution of the goal pose collides (last: {collided})", planner=name
            )
        return PlanResult(
            NO_IK_SOLUTION, f"no IK solution for position {np.round(position, 3).tolist()}", planner=name
        )

    @_timed
    def plan_cartesian(
        self,
        start: Sequence[float],
        position: Sequence[float],
        orientation: Sequence[float],
        gripper_contact: bool = False,
    ) -> PlanResult:
        """Straight line of the gripper centre to a pose: IK every `cartesian.step` metres, no joint jumps.

        gripper_contact: the gripper may touch the tray and objects (a grasp's descent and lift, executed as a
        guarded move that stops on contact); the arm may not."""
        t0 = time.monotonic()
        cfg, kin = self.config, self.scene.kinematics
        why = pose_problem(position, orientation)
        if why:
            return PlanResult(INVALID_GOAL, why, planner="cartesian")
        q, why = self._start(start, gripper_contact)
        if q is None:
            return PlanResult(PLANNING_FAILED, why, planner="cartesian")
        p0, o0 = kin.fk(q)
        p1 = np.asarray(position, float)
        n = max(
            1,
            math.ceil(
                max(np.linalg.norm(p1 - p0) / cfg.cartesian_step, orientation_error(o0, orientation) / 0.05)
            ),
        )
        path = [q]
        for i in range(1, n + 1):
            s = i / n
            orn = pb.getQuaternionSlerp(o0, orientation, s)
            q = kin.ik(p0 + s * (p1 - p0), orn, seed=path[-1], restarts=1)
            where = f"at {100 * s:.0f}% of the line"
            if q is None:
                code = NO_IK_SOLUTION if i == 1 or kin.ik(p1, orientation) is None else PLANNING_FAILED
                return PlanResult(code, f"no IK solution {where}", planner="cartesian")
            jump = float(np.max(np.abs(q - path[-1])))
            if jump > cfg.max_joint_jump:
                return PlanResult(
                    PLANNING_FAILED, f"joint jump of {jump:.3f} rad {where}", planner="cartesian"
                )
            why = self.scene.collision(q, cfg.objects_vs_gripper, gripper_contact)
            if why:
                return PlanResult(PLANNING_FAILED, f"collision {where} ({why})", planner="cartesian")
            path.append(q)
        return PlanResult(SUCCESS, "", np.array(path), time.monotonic() - t0, "cartesian")

    # -- OMPL --------------------------------------------------------------------------------------------------------

    def free_line(self, q0: np.ndarray, q1: np.ndarray) -> bool:
        """Whether the straight joint-space motion is collision-free at the checking resolution."""
        n = max(1, math.ceil(float(np.linalg.norm(q1 - q0)) / self.config.resolution))
        return all(self.scene.is_valid(q0 + (q1 - q0) * (k / n)) for k in range(1, n + 1))

    def _make_planner(self, name: str, si: ob.SpaceInformation) -> ob.Planner:
        p = self.config.planner_params(name)
        if name == "RRTConnect":
            planner = og.RRTConnect(si)
            if p.get("range"):
                planner.setRange(p["range"])
        elif name == "PRM":
            planner = og.PRM(si)
            if p.get("max_nearest_neighbors"):
                planner.setMaxNearestNeighbors(int(p["max_nearest_neighbors"]))
        else:
            planner = og.BITstar(si)
            planner.setSamplesPerBatch(int(p.get("samples_per_batch", 100)))
            planner.setRewireFactor(p.get("rewire_factor", 1.1))
        return planner

    def _solve(
        self, q0: np.ndarray, q1: np.ndarray, name: str, limit: float, seed: int, t0: float
    ) -> PlanResult:
        if name not in PLANNERS:
            return PlanResult(
                PLANNING_FAILED, f"unknown planner {name!r}; known: {', '.join(PLANNERS)}", planner=name
            )
        if limit <= 0:
            return PlanResult(TIMED_OUT, "time limit used up before planning", planner=name)
        if self.config.try_direct and self.free_line(q0, q1):
            return PlanResult(SUCCESS, "direct", np.array([q0, q1]), time.monotonic() - t0, name)
        seed_ompl(seed)
        space = ob.RealVectorStateSpace(self.dof)
        bounds = ob.RealVectorBounds(self.dof)
        for i, (lo, hi) in enumerate(zip(self.robot.lower, self.robot.upper)):
            bounds.setLow(i, float(lo))
            bounds.setHigh(i, float(hi))
        space.setBounds(bounds)
        ss = og.SimpleSetup(space)
        dof, scene = self.dof, self.scene
        ss.setStateValidityChecker(lambda s: scene.is_valid([s[i] for i in range(dof)]))
        si = ss.getSpaceInformation()
        si.setStateValidityCheckingResolution(self.config.resolution / space.getMaximumExtent())
        ss.setPlanner(self._make_planner(name, si))
        start, goal = space.allocState(), space.allocState()
        for i in range(dof):
            start[i], goal[i] = float(q0[i]), float(q1[i])
        ss.setStartAndGoalStates(start, goal)
        deadline = t0 + limit
        chunk = self.config.planner_params(name).get("optimize_time", limit) if name in OPTIMIZING else limit
        status = ss.solve(max(1e-3, min(chunk, deadline - time.monotonic())))
        while not ss.haveExactSolutionPath() and time.monotonic() < deadline and name in OPTIMIZING:
            status = ss.solve(max(1e-3, min(chunk, deadline - time.monotonic())))
        if not ss.haveExactSolutionPath():
            timed_out = status == ob.PlannerStatus.TIMEOUT or status == ob.PlannerStatus.APPROXIMATE_SOLUTION
            code = TIMED_OUT if timed_out else PLANNING_FAILED
            return PlanResult(
                code, f"{name}: {status.asString()}", planning_time=time.monotonic() - t0, planner=name
            )
        if self.config.simplify:
            ss.simplifySolution(max(1e-3, deadline - time.monotonic()))
        states = ss.getSolutionPath().getStates()
        path = np.array([[s[i] for i in range(dof)] for s in states])
        return PlanResult(SUCCESS, "", path, time.monotonic() - t0, name)
