"""The Closed-Loop Engine: physics and a brain stepped in lockstep through transfer functions.

Each CLE step: observe the robot -> sensor TFs -> brain -> actuator TFs -> command the robot and advance physics
by a fixed number of steps. Physics never runs between CLE steps, so a slow brain cannot desynchronise.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from myriad_cle.sim import RobotModel, RobotState, SimAdapter
from myriad_cle.transfer import Command, TransferFunctionError, TransferFunctions, load_transfer_functions
from myriad_sim.camera import Frame

DEFAULT_TIMESTEP = 0.02
IDLE, RUNNING, PAUSED, STOPPED = "idle", "running", "paused", "stopped"


class TimestepError(ValueError):
    """The CLE timestep is not a positive integer multiple of the physics step."""


class EngineError(RuntimeError):
    """The engine cannot do what was asked in its current state."""


def physics_steps(timestep: float, physics_step: float) -> int:
    """Physics steps per CLE step; TimestepError (with the nearest valid timesteps) unless a whole number."""
    if isinstance(timestep, bool) or not isinstance(timestep, (int, float)) or not timestep > 0:
        raise TimestepError(f"timestep: expected a positive number of seconds, got {timestep!r}")
    ratio = timestep / physics_step
    k = round(ratio)
    if k >= 1 and abs(ratio - k) <= 1e-6 * ratio:
        return k
    lo = max(1, math.floor(ratio))
    options = sorted({lo, max(1, math.ceil(ratio))})
    nearest = " or ".join(f"{n * physics_step:.6g} s ({n} physics step{'s' * (n > 1)})" for n in options)
    raise TimestepError(
        f"timestep: the CLE timestep {timestep:.6g} s is not an integer multiple of the physics step "
        f"{physics_step:.6g} s ({1 / physics_step:.6g} Hz); nearest valid: {nearest}"
    )


def nearest_timestep(timestep: float, physics_step: float) -> float:
    """The valid CLE timestep (a whole number of physics steps, at least one) nearest `timestep`."""
    return max(1, round(timestep / physics_step)) * physics_step


class Observation:
    """What the transfer functions see at a CLE step: the robot state, CLE time, step index and timestep, plus
    the camera, contacts and the tool-centre Jacobian computed on first access.
    `rng` is the run's seeded generator: draw noise from it so that a seed replays bit for bit."""

    def __init__(
        self, state: RobotState, time: float, step: int, rng: np.random.Generator, engine: ClosedLoopEngine
    ):
        self.state, self.time, self.step, self.rng, self._engine = state, time, step, rng, engine
        self.timestep = engine.timestep
        self.joint_names = state.joint_names
        self.joint_positions = state.joint_positions
        self.joint_velocities = state.joint_velocities
        self.ee_position = state.ee_position
        self.ee_orientation = state.ee_orientation
        self.gripper = state.gripper

    @cached_property
    def camera(self) -> Frame:
        return self._engine.sim.capture()

    @cached_property
    def contacts(self) -> list[str]:
        return self._engine.sim.contacts()

    @cached_property
    def jacobian(self) -> np.ndarray:
        return self._engine.model.jacobian(self.joint_positions)


@dataclass
class Trace:
    """Robot state after every CLE step of a run."""

    states: list[RobotState] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def time(self) -> np.ndarray:
        return np.array(self.times)

    @property
    def joint_positions(self) -> np.ndarray:
        return np.array([s.joint_positions for s in self.states])

    @property
    def ee_positions(self) -> np.ndarray:
        return np.array([s.ee_position for s in self.states])


def _is_torch_module(obj: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__)


class _TorchBrain:
    """A torch.nn.Module as a brain: inputs become float32 tensors passed by name, outputs become numpy."""

    def __init__(self, module: Any):
        self.module = module

    def __call__(self, inputs: Mapping[str, Any]) -> Any:
        import torch

        with torch.no_grad():
            out = self.module(
                **{k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in inputs.items()}
            )
        return _to_numpy(out)

    def reset(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)


def _to_numpy(out: Any) -> Any:
    if hasattr(out, "detach"):
        return out.detach().cpu().numpy()
    if isinstance(out, (tuple, list)):
        return type(out)(_to_numpy(v) for v in out)
    if isinstance(out, dict):
        return {k: _to_numpy(v) for k, v in out.items()}
    return out


def as_brain(brain: Any) -> Callable[[Mapping[str, Any]], Any]:
    """A brain called with {input name: value}: any callable, or a torch.nn.Module (duck-typed)."""
    if _is_torch_module(brain):
        return _TorchBrain(brain)
    if not callable(brain):
        raise TransferFunctionError(
            f"brain: expected a callable or a torch.nn.Module, got {type(brain).__name__}"
        )
    return brain


class ClosedLoopEngine:
    """Steps `sim` and `brain` in lockstep every `timestep` seconds (default: the multiple of the physics step
    nearest 20 ms). start/pause/stop may come from another thread; they take effect between CLE steps."""

    def __init__(
        self,
        sim: SimAdapter,
        brain: Any,
        transfer_functions: TransferFunctions | str | Path | Iterable[Callable],
        timestep: float | None = None,
        seed: int = 0,
    ):
        self.sim = sim
        self.brain = as_brain(brain)
        self.tfs = load_transfer_functions(transfer_functions)
        dt = sim.spec.timestep
        self.physics_steps = physics_steps(
            nearest_timestep(DEFAULT_TIMESTEP, dt) if timestep is None else timestep, dt
        )
        self.timestep = self.physics_steps * dt
        self.state = IDLE
        self._lock = threading.Lock()
        self._model: RobotModel | None = None
        self._begin(seed)

    @property
    def model(self) -> RobotModel:
        if self._model is None:
            self._model = RobotModel(self.sim.spec.robot)
        return self._model

    @property
    def time(self) -> float:
        """CLE time since the last reset, seconds."""
        return self.steps * self.timestep

    def _begin(self, seed: int) -> None:
        self.seed, self.steps = seed, 0
        self.rng = np.random.default_rng(seed)
        self.trace = Trace()
        reset = getattr(self.brain, "reset", None)
        if callable(reset):
            reset(seed)
        self.robot = self.sim.observe()

    def reset(self, seed: int | None = None) -> None:
        """Stop, rebuild the world from `seed` (default: the current one), restart the brain and the trace."""
        self.state = STOPPED
        with self._lock:
            seed = self.seed if seed is None else seed
            self.sim.reset(seed)
            self._begin(seed)
            self.state = IDLE

    def step(self) -> Observation:
        """One CLE step; returns the observation the brain acted on."""
        obs = self._advance()
        if obs is None:
            raise EngineError("the engine is stopped: reset it before stepping")
        return obs

    def _advance(self) -> Observation | None:
        with self._lock:
            if self.state == STOPPED:
                return None
            obs = Observation(self.robot, self.time, self.steps, self.rng, self)
            output = self.brain(self.tfs.sense(obs))
            arm, gripper = merge_commands(self.tfs.actuate(output, obs), self.robot.joint_names)
            self.robot = self.sim.step(self.physics_steps, arm, gripper)
            self.steps += 1
            self.trace.states.append(self.robot)
            self.trace.times.append(self.time)
            return obs

    def run(self, duration: float | None = None) -> Trace:
        """Run (or resume) for `duration` seconds of sim time, or until pause()/stop(); returns the trace."""
        if self.state == STOPPED:
            raise EngineError("the engine is stopped: reset it before running")
        n = None if duration is None else round(duration / self.timestep)
        self.state = RUNNING
        done = 0
        while self.state == RUNNING and (n is None or done < n):
            if self._advance() is None:
                break
            done += 1
        if self.state == RUNNING:
            self.state = PAUSED
        return self.trace

    def start(self) -> None:
        """Mark the engine running (a driver thread then calls run())."""
        if self.state == STOPPED:
            raise EngineError("the engine is stopped: reset it before starting")
        self.state = RUNNING

    def pause(self) -> None:
        if self.state == RUNNING:
            self.state = PAUSED

    def stop(self) -> None:
        self.state = STOPPED

    def close(self) -> None:
        if self._model is not None:
            self._model.close()


def merge_commands(
    commands: list[Command], joints: tuple[str, ...]
) -> tuple[dict[str, float] | None, float | None]:
    """Joint targets by name and the gripper opening (clipped to [0, 1]) of the commands; later ones win."""
    arm: dict[str, float] = {}
    gripper = None
    for c in commands:
        if c.arm is not None:
            if isinstance(c.arm, Mapping):
                unknown = [n for n in c.arm if n not in joints]
                if unknown:
                    raise TransferFunctionError(
                        f"Command.arm: unknown joints {unknown}; the arm has {list(joints)}"
                    )
                values = {n: float(v) for n, v in c.arm.items()}
            else:
                q = np.asarray(c.arm, dtype=float).ravel()
                if len(q) != len(joints):
                    raise TransferFunctionError(
                        f"Command.arm: {len(q)} targets for the {len(joints)} arm joints {list(joints)}"
                    )
                values = dict(zip(joints, q.tolist()))
            if not all(math.isfinite(v) for v in values.values()):
                raise TransferFunctionError(f"Command.arm: targets must be finite, got {values}")
            arm.update(values)
        if c.gripper is not None:
            if not math.isfinite(c.gripper):
                raise TransferFunctionError(
                    f"Command.gripper: expected an opening in [0, 1], got {c.gripper}"
                )
            gripper = min(1.0, max(0.0, float(c.gripper)))
    return arm or None, gripper
