"""CLE experiment configuration: brain, transfer-function file, timestep, seed, from YAML or node parameters.

```yaml
brain: reach_brain.py:ProportionalBrain   # file.py:name (relative to this file) or package.module:name
transfer_functions: reach_transfer_functions.py
timestep: 0.025          # s, optional: default the multiple of the physics step nearest 20 ms
seed: 0
object_count: 0          # objects dropped into the tray at reset
duration: 0.0            # s of sim time per start; 0 runs until paused or stopped
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from myriad_sim.config import ConfigError, ConfigReader, read_yaml


@dataclass(frozen=True)
class CLEConfig:
    brain: str = ""
    transfer_functions: str = ""
    timestep: float | None = None
    seed: int = 0
    object_count: int = 0
    duration: float = 0.0

    def merged(self, overrides: dict[str, Any]) -> CLEConfig:
        """This config with the non-empty values of `overrides` (e.g. node parameters) replacing its own."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v not in ("", None)})

    def check(self, where: str = "CLE config") -> CLEConfig:
        for name in ("brain", "transfer_functions"):
            if not getattr(self, name):
                raise ConfigError(f"{where}: field '{name}': expected a non-empty string, got ''")
        if self.object_count < 0:
            raise ConfigError(
                f"{where}: field 'object_count': expected a non-negative integer, got {self.object_count}"
            )
        if not 0 <= self.duration < math.inf:
            raise ConfigError(
                f"{where}: field 'duration': expected a finite number >= 0 (seconds), got {self.duration}"
            )
        return self


def _resolve(ref: str, base: Path) -> str:
    """Make the file part of `file.py[:name]` absolute against base (module references are left alone)."""
    file, colon, name = ref.rpartition(":") if ref.count(":") else (ref, "", "")
    if file.endswith(".py") and not Path(file).is_absolute():
        file = str(base / file)
    return f"{file}{colon}{name}"


def load_config(path: Path | str) -> CLEConfig:
    """Read a CLE experiment YAML; file references are relative to its directory."""
    path = Path(path).resolve()
    r, d = ConfigReader(path, read_yaml(path)), CLEConfig()
    timestep = r.get("timestep", None)
    config = CLEConfig(
        brain=_resolve(r.string("brain"), path.parent),
        transfer_functions=_resolve(r.string("transfer_functions"), path.parent),
        timestep=None if timestep is None else r.number("timestep", positive=True),
        seed=r.integer("seed", d.seed),
        object_count=r.integer("object_count", d.object_count),
        duration=r.number("duration", d.duration),
    ).check(str(path))
    r.finish()
    return config
