"""Closed-Loop Engine: steps physics and a brain in lockstep through transfer functions."""

from myriad_cle.engine import (
    DEFAULT_TIMESTEP,
    ClosedLoopEngine,
    EngineError,
    Observation,
    TimestepError,
    Trace,
    nearest_timestep,
    physics_steps,
)
from myriad_cle.sim import LocalSim, RobotState, SimAdapter
from myriad_cle.transfer import (
    Command,
    TransferFunctionError,
    TransferFunctions,
    actuator,
    load_brain,
    load_transfer_functions,
    sensor,
)

__all__ = [
    "DEFAULT_TIMESTEP",
    "ClosedLoopEngine",
    "Command",
    "EngineError",
    "LocalSim",
    "Observation",
    "RobotState",
    "SimAdapter",
    "TimestepError",
    "Trace",
    "TransferFunctionError",
    "TransferFunctions",
    "actuator",
    "load_brain",
    "load_transfer_functions",
    "nearest_timestep",
    "physics_steps",
    "sensor",
]
