"""The one way to load code named in configuration: `package.module:name` or `path/to/file.py:name`."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

_module_ids = itertools.count()


class LoadError(ValueError):
    """Code named by a reference cannot be loaded; the message names what it was for, the reference and why."""


def load_module(path: Path | str, what: str) -> ModuleType:
    """Execute a Python file as a fresh module."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LoadError(f"{what}: file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_myriad_user_{next(_module_ids)}_{path.stem}", path)
    if spec is None or spec.loader is None or path.suffix != ".py":
        raise LoadError(f"{what}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise LoadError(f"{what}: {path} failed to load: {type(exc).__name__}: {exc}") from exc
    return module


def load_object(ref: str, what: str) -> Any:
    """The object `package.module:name` or `path/to/file.py:name` refers to."""
    where, _, name = ref.rpartition(":")
    if not where or not name:
        raise LoadError(f"{what}: expected 'file.py:name' or 'package.module:name', got {ref!r}")
    if where.endswith(".py"):
        module = load_module(where, what)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:  # ImportError, or the module failing as it runs
            raise LoadError(f"{what}: cannot import {where!r}: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, name):
        raise LoadError(f"{what}: {where} has no attribute {name!r}")
    return getattr(module, name)
