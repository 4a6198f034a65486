"""Transfer functions: plain functions marked @sensor (robot -> brain) or @actuator (brain -> robot).

A sensor TF takes an Observation and returns one brain input, named after the function (or `name=`).
An actuator TF takes the brain output and the Observation and returns a Command (or None for no change).
Several of each may exist; they are collected, in definition order, from a Python file or a list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myriad_runtime.loading import LoadError, load_module, load_object

SENSOR, ACTUATOR = "sensor", "actuator"
_MARK = "__myriad_tf__"


class TransferFunctionError(ValueError):
    """Transfer functions (or a brain) cannot be loaded or failed while running; the message says which."""


@dataclass
class Command:
    """Robot command of one CLE step. arm: all arm joint targets in order, or {joint name: target};
    gripper: opening in [0, 1] (0 closed). None leaves that part as it is."""

    arm: Sequence[float] | Mapping[str, float] | None = None
    gripper: float | None = None


def _mark(kind: str, fn: Callable | None, name: str | None) -> Any:
    def wrap(f: Callable) -> Callable:
        if not callable(f):
            raise TypeError(f"@{kind} decorates a function, got {f!r}")
        setattr(f, _MARK, (kind, name or f.__name__))
        return f

    return wrap(fn) if fn is not None else wrap


def sensor(fn: Callable | None = None, *, name: str | None = None) -> Any:
    """Mark `fn(obs) -> value` as a robot-to-brain transfer function; its value is brain input `name`."""
    return _mark(SENSOR, fn, name)


def actuator(fn: Callable | None = None, *, name: str | None = None) -> Any:
    """Mark `fn(output, obs) -> Command | None` as a brain-to-robot transfer function."""
    return _mark(ACTUATOR, fn, name)


@dataclass
class TransferFunctions:
    sensors: list[tuple[str, Callable]]
    actuators: list[tuple[str, Callable]]
    origin: str = "<code>"

    @classmethod
    def collect(cls, functions: Iterable[Any], origin: str = "<code>") -> TransferFunctions:
        """The marked functions among `functions` (others are ignored), in order."""
        sensors, actuators = [], []
        for f in functions:
            kind, name = getattr(f, _MARK, (None, None))
            (sensors if kind == SENSOR else actuators if kind == ACTUATOR else []).append((name, f))
        dupes = sorted({n for n, _ in sensors if [m for m, _ in sensors].count(n) > 1})
        if dupes:
            raise TransferFunctionError(f"{origin}: several @sensor functions give the brain input {dupes}")
        if not sensors and not actuators:
            raise TransferFunctionError(f"{origin}: no @sensor or @actuator functions")
        return cls(sensors, actuators, origin)

    def sense(self, obs: Any) -> dict[str, Any]:
        return {name: _call(SENSOR, name, self.origin, fn, obs) for name, fn in self.sensors}

    def actuate(self, output: Any, obs: Any) -> list[Command]:
        out = []
        for name, fn in self.actuators:
            cmd = _call(ACTUATOR, name, self.origin, fn, output, obs)
            if cmd is not None and not isinstance(cmd, Command):
                raise TransferFunctionError(
                    f"actuator {name!r} ({self.origin}) returned {type(cmd).__name__}, expected a Command or None"
                )
            if cmd is not None:
                out.append(cmd)
        return out


def _call(kind: str, name: str, origin: str, fn: Callable, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        raise TransferFunctionError(
            f"{kind} {name!r} ({origin}) failed: {type(exc).__name__}: {exc}"
        ) from exc


def load_transfer_functions(source: Path | str | Iterable[Callable] | TransferFunctions) -> TransferFunctions:
    """Transfer functions from a Python file, an iterable of marked functions, or as given."""
    if isinstance(source, TransferFunctions):
        return source
    if isinstance(source, (str, Path)):
        try:
            module = load_module(source, "transfer_functions")
        except LoadError as exc:
            raise TransferFunctionError(str(exc)) from exc.__cause__
        return TransferFunctions.collect(vars(module).values(), str(source))
    return TransferFunctions.collect(source)


def load_brain(ref: str, what: str = "brain") -> Any:
    """A brain from `path/to/file.py:name` or `package.module:name`; a class is instantiated without arguments."""
    try:
        obj = load_object(ref, what)
    except LoadError as exc:
        raise TransferFunctionError(str(exc)) from exc.__cause__
    return obj() if isinstance(obj, type) else obj
