"""The one reader of Myriad's YAML files (world, robot, planning, CLE experiment): typed fields with defaults,
unknown fields rejected, every error one line naming the file and the field."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class ConfigError(ValueError):
    """A configuration file is malformed; the message names the file and the field."""


class ConfigReader:
    """Typed access to a YAML mapping that reports `file: field 'name': expected ..., got ...`.

    `finish()` on the file's top reader rejects every field no reader (or `sub`/`child` reader) asked for."""

    def __init__(self, path: Path, data: Any, prefix: str = ""):
        self.path, self.data, self.prefix = path, data, prefix
        self.asked: set[str] = set()
        self.children: list[ConfigReader] = []
        if not isinstance(data, dict):
            self.fail("", "a mapping", data)

    def child(self, data: Any, prefix: str) -> ConfigReader:
        """A reader of a nested mapping (a list entry, say), checked by this one's finish()."""
        reader = ConfigReader(self.path, data, prefix)
        self.children.append(reader)
        return reader

    def finish(self) -> None:
        """Reject fields nobody asked for, here and in the child readers."""
        for key in self.data:
            if key not in self.asked:
                known = ", ".join(sorted(str(k) for k in self.asked)) or "none"
                raise ConfigError(f"{self.path}: field '{self.prefix}{key}': unknown field (known: {known})")
        for reader in self.children:
            reader.finish()

    def fail(self, key: str, expected: str, got: Any) -> None:
        name = f"{self.prefix}{key}" or "<top level>"
        raise ConfigError(f"{self.path}: field '{name}': expected {expected}, got {got!r}")

    def get(self, key: str, default: Any = ...) -> Any:
        self.asked.add(key)
        if key not in self.data:
            if default is ...:
                self.fail(key, "a value (the field is required)", None)
            return default
        return self.data[key]

    def sub(self, key: str, default: Any = ...) -> ConfigReader:
        """The reader of the mapping under `key` (`default` when it is absent)."""
        return self.child(self.get(key, default), f"{self.prefix}{key}.")

    def number(self, key: str, default: Any = ..., positive: bool = False) -> float:
        v = self.get(key, default)
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or (positive and v <= 0)
        ):
            self.fail(key, "a positive number" if positive else "a number", v)
        return float(v)

    def integer(self, key: str, default: Any = ..., positive: bool = False) -> int:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or (positive and v <= 0):
            self.fail(key, "a positive integer" if positive else "an integer", v)
        return v

    def boolean(self, key: str, default: Any = ...) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            self.fail(key, "true or false", v)
        return v

    def string(self, key: str, default: Any = ...) -> str:
        v = self.get(key, default)
        if not isinstance(v, str) or not v:
            self.fail(key, "a non-empty string", v)
        return v

    def vector(self, key: str, n: int, default: Any = ...) -> tuple[float, ...]:
        v = self.get(key, default)
        ok = isinstance(v, (list, tuple)) and len(v) == n
        ok = ok and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v
        )
        if not ok:
            self.fail(key, f"a list of {n} numbers", v)
        return tuple(float(x) for x in v)

    def strings(self, key: str) -> tuple[str, ...]:
        v = self.get(key)
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
            self.fail(key, "a non-empty list of names", v)
        return tuple(v)

    def interval(self, key: str) -> tuple[float, float]:
        lo, hi = self.vector(key, 2)
        if lo > hi:
            self.fail(key, "[low, high] with low <= high", [lo, hi])
        return lo, hi


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning every failure into a ConfigError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None


def is_int(value: Any) -> bool:
    """An integer, not a bool: Python's, numpy's or BSON's Int64 (a database value)."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def finite_array(values: Sequence[float], shape: tuple[int, ...]) -> np.ndarray | None:
    """`values` as a float array of `shape`, or None when they are not that many finite numbers."""
    try:
        a = np.asarray(values, float)
    except (TypeError, ValueError):
        return None
    return a if a.shape == shape and bool(np.all(np.isfinite(a))) else None


def shown(values: Sequence[float]) -> str:
    """Numbers for a message, rounded to 3 decimals when they form an array."""
    try:
        return str(np.round(np.asarray(values, float), 3).tolist())
    except (TypeError, ValueError):
        return repr(values)
