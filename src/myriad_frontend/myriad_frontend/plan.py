"""The one start path: a back-end description rendered into processes, command lines, environments and parameter
files. `myriad collect` (processes.BackendProcesses), the Ray actors and `launch/backends.launch.py` all start
exactly what `plan_backend` returns, so what the tests run is what `ros2 launch` runs.

Every process is `python -m myriad_runtime.container --executor <executor> --nodes <classes> --ros-args
-r __ns:=<ns> [-r a:=b] --params-file <file>`: no `__node` remap (it would rename every node of a composed process), one parameter
file keyed by each node's full name. Secrets (the database URI) travel in the environment, never in a file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from myriad_frontend.description import Description
from myriad_storage.server import ENV_URI

# Environment of every back-end process, besides what it inherits.
BASE_ENV = {
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",  # DDS stays on this host (ROS_LOCALHOST_ONLY is not read)
    "LP_NUM_THREADS": "1",  # Mesa's llvmpipe: one thread per process when many back ends share the cores
    "OPENBLAS_NUM_THREADS": "1",  # numpy's BLAS likewise (the learned strategy's model: 2.6x less CPU than 2 threads)
    "PYTHONUNBUFFERED": "1",  # log lines reach the log file (or the launch screen) as they are written
    # glibc's malloc gives each new thread an arena of its own (up to 8 per core), and a back end ran each planning
    # call on a new thread (now on reused workers): with the default, one back end grew 338 -> 599 MB over 600
    # attempts; with 2 arenas 311 -> 410 MB over 450, levelling off, at the same throughput (bench_collect: 2.40
    # attempts/s per core).
    "MALLOC_ARENA_MAX": "2",
}


@dataclass(frozen=True)
class ProcessPlan:
    """One OS process of a back end: its command line, the environment it needs and its log file."""

    backend: str
    name: str
    cmd: tuple[str, ...]
    env: dict[str, str]
    params_file: Path
    log_file: Path

    @property
    def label(self) -> str:
        return f"{self.backend}.{self.name}"


# Fast DDS profiles (config/fastdds.xml: how long a service waits to match a new client before answering it).
ENV_DDS_PROFILES = "FASTDDS_DEFAULT_PROFILES_FILE"


def dds_profiles_env(workspace: Path | str) -> dict[str, str]:
    """The workspace's Fast DDS profiles, unless this environment names its own (a user's profile file wins: it
    then needs config/fastdds.xml's service setting too)."""
    own = os.environ.get(ENV_DDS_PROFILES)
    return {ENV_DDS_PROFILES: own or str(Path(workspace) / "config" / "fastdds.xml")}


def backend_env(workspace: Path | str, domain_id: int, mongo_uri: str = "") -> dict[str, str]:
    """The environment a back end's processes need: discovery on this host, the run's DDS domain, the
    workspace, its Fast DDS profiles, and the database URI (a secret: environment only)."""
    env = {**BASE_ENV, "ROS_DOMAIN_ID": str(domain_id), "MYRIAD_WS": str(workspace)}
    env.update(dds_profiles_env(workspace))
    if mongo_uri:
        env[ENV_URI] = mongo_uri
    return env


def plan_backend(
    desc: Description,
    index: int,
    values: dict[str, str],
    run_dir: Path,
    env: dict[str, str],
    python: str = sys.executable,
) -> list[ProcessPlan]:
    """The processes of back end `index` (id `b{index}`, files in `run_dir/b{index}`): renders the description
    with `values` (${ws}, ${database}, ${campaign}, ...), writes the parameter file, returns the plans."""
    bid = f"b{index}"
    bdir = Path(run_dir) / bid
    rendered = desc.render(index=index, backend=bid, run_dir=bdir, **values)
    bdir.mkdir(parents=True, exist_ok=True)
    params = bdir / "params.yaml"
    tmp = params.with_suffix(".tmp")
    tmp.write_text(rendered.params_yaml())
    os.replace(tmp, params)  # a restarting process never reads a half-written file
    return [
        ProcessPlan(
            bid,
            proc.name,
            (
                python,
                "-m",
                "myriad_runtime.container",
                "--executor",
                rendered.executor,
                "--nodes",
                *(n.cls for n in proc.nodes),
                *rendered.ros_args(params),
            ),
            dict(env),
            params,
            bdir / f"{proc.name}.log",
        )  # fmt: skip
        for proc in rendered.processes
    ]
