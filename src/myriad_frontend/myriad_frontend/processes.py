"""Back ends as local process groups: start, watch, stop (SIGINT, then SIGKILL), clean Fast DDS shared memory."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from myriad_frontend.description import Description, RenderedBackend
from myriad_runtime import workspace


def ros_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every process Myriad starts: discovery on this host only, logs under the workspace."""
    env = dict(os.environ)
    ws = workspace()
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOG_DIR=env.get("ROS_LOG_DIR", f"{ws}/log/ros"),
        ROS_HOME=env.get("ROS_HOME", f"{ws}/log/ros_home"),
        LP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In the child before exec: SIGINT at its default and unblocked (shells ignore it in background jobs, Ray's
    workers block it), and SIGKILL when the parent thread dies, however it dies: no orphaned back ends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_group(cmd: list[str], log_file: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start a command in its own session (process group), output appended to log_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, preexec_fn=_child_setup,
        )  # fmt: skip


def stop_groups(procs: list[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGINT every group, wait up to `grace` seconds, then SIGKILL what is left; reap all."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()


def clean_shared_memory(shm: Path = Path("/dev/shm"), min_age: float = 2.0) -> int:
    """Remove Fast DDS shared-memory files that no live process has open or mapped (left by killed processes).

    Kilted's `fastdds shm clean` looks for the older fastrtps_* names and misses these. Files younger than
    `min_age` seconds are kept: a participant that is starting may not have mapped its files yet."""
    files = list(shm.glob("*fastdds_*"))
    if not files:
        return 0
    in_use: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            in_use.update(
                line.split(None, 5)[-1]
                for line in (proc / "maps").read_text().splitlines()
                if str(shm) in line
            )
            in_use.update(os.readlink(fd) for fd in (proc / "fd").iterdir())
        except OSError:  # the process ended, or is not ours to read
            continue
    now, removed = time.time(), 0
    for f in files:
        try:
            if str(f) not in in_use and now - f.stat().st_mtime >= min_age:
                f.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


@dataclass
class LocalBackend:
    """One back end: the processes of the description, in one namespace, restartable as a unit."""

    index: int
    backend_id: str
    rendered: RenderedBackend
    run_dir: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    restarts: int = 0
    last_exit: str = ""
    crash_streak: int = 0
    done_at_restart: int = -1

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        params = self.run_dir / "params.yaml"
        params.write_text(self.rendered.params_yaml())
        for proc in self.rendered.processes:
            cmd = [sys.executable, "-m", "myriad_runtime.container", "--nodes", *(n.cls for n in proc.nodes)]
            cmd += self.rendered.ros_args(params)
            self.procs[proc.name] = start_group(cmd, self.run_dir / f"{proc.name}.log", self.env)

    def dead(self) -> list[str]:
        """Names of processes that have exited, with their codes."""
        return [f"{n} (exit {p.returncode})" for n, p in self.procs.items() if p.poll() is not None]

    def stop(self, grace: float = 5.0) -> None:
        stop_groups(list(self.procs.values()), grace)

    def restart(self) -> None:
        self.last_exit = ", ".join(self.dead())
        self.stop(grace=2.0)
        self.restarts += 1
        self.start()

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]


def make_backends(
    desc: Description, count: int, run_dir: Path, values: dict[str, str], first_index: int = 0
) -> list[LocalBackend]:
    """N back ends rendered from one description; `values` fills ${mongo_uri}, ${campaign}, ... ."""
    out = []
    for i in range(first_index, first_index + count):
        bid = f"b{i}"
        bdir = run_dir / bid
        rendered = desc.render(index=i, backend=bid, run_dir=bdir, **values)
        out.append(LocalBackend(i, bid, rendered, bdir, ros_env()))
    return out
