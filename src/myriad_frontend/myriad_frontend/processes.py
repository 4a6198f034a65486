"""Back ends as local process groups: start, watch, stop (SIGINT, then SIGKILL), clean Fast DDS shared memory."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from myriad_frontend.plan import BASE_ENV, ProcessPlan, dds_profiles_env
from myriad_runtime import workspace


def ros_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every process Myriad starts: discovery on this host only, the workspace's Fast DDS profiles,
    logs under the workspace."""
    env = dict(os.environ)
    ws = workspace()
    env.update(BASE_ENV)
    env.update(dds_profiles_env(ws))
    env.setdefault("ROS_LOG_DIR", f"{ws}/log/ros")
    env.setdefault("ROS_HOME", f"{ws}/log/ros_home")
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


_interrupted = threading.Event()


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM (kill, systemd, Docker) stop a run as Ctrl-C does, also when Python drops the
    KeyboardInterrupt: one raised inside a finalizer (`__del__`, e.g. pymongo's) is only printed, so the run's
    polling loop asks `raise_if_interrupted()` as well. An ignored SIGINT (a shell's background job) stays
    ignored. Main thread only."""
    _interrupted.clear()
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _interrupt)


def _interrupt(_signum: int, _frame: object) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """KeyboardInterrupt if a stop signal arrived since `stop_on_signals()`, even one whose exception was lost."""
    if _interrupted.is_set():
        raise KeyboardInterrupt


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Run a cleanup with SIGINT and SIGTERM ignored: a second Ctrl-C (or `kill`) while back ends are being
    stopped must not abort the stop half-way or throw a traceback; the stop is already under way."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def abandoned_shared_memory(shm: Path = Path("/dev/shm"), min_age: float = 2.0) -> list[Path]:
    """Fast DDS shared-memory files that no live process has open or mapped and that are at least `min_age`
    seconds old (a participant that is starting may not have mapped its files yet)."""
    files = list(shm.glob("*fastdds_*"))
    if not files:
        return []
    in_use: set[str] = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            in_use |= _mapped(proc, shm) | _open_files(proc)
    now, out = time.time(), []
    for f in files:
        try:
            if str(f) not in in_use and now - f.stat().st_mtime >= min_age:
                out.append(f)
        except FileNotFoundError:
            pass
    return out


def _mapped(proc: Path, shm: Path) -> set[str]:
    """Paths under `shm` that process `proc` (/proc/PID) maps; none if it ended or is not ours to read."""
    try:
        maps = (proc / "maps").read_text().splitlines()
    except OSError:
        return set()
    return {line.split(None, 5)[-1] for line in maps if str(shm) in line}


def _open_files(proc: Path) -> set[str]:
    """What process `proc` has open. A descriptor closed while it is read is skipped, not the process: one
    of a busy process's sockets closing must not make its shared-memory files look abandoned."""
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:  # the process ended, or is not ours to read
        return set()
    out = set()
    for fd in fds:
        try:
            out.add(os.readlink(fd))
        except OSError:
            pass
    return out


def clean_shared_memory(shm: Path = Path("/dev/shm"), min_age: float = 2.0, after_stop: bool = False) -> int:
    """Remove the Fast DDS shared-memory files left by killed processes (abandoned_shared_memory).

    Kilted's `fastdds shm clean` looks for the older fastrtps_* names and misses these. With `after_stop` (our
    own processes just stopped), files too young to judge are waited for once, so none of ours is left."""
    removed = 0
    for f in abandoned_shared_memory(shm, min_age):
        try:
            f.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    if after_stop and abandoned_shared_memory(shm, 0.0):
        time.sleep(min_age)
        removed += clean_shared_memory(shm, min_age)
    return removed


@dataclass
class BackendProcesses:
    """One back end as OS process groups (the processes of its plan), restartable as a unit."""

    backend_id: str
    plans: list[ProcessPlan]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    restarts: int = 0
    last_exit: str = ""

    @property
    def run_dir(self) -> Path:
        return self.plans[0].log_file.parent

    def start(self) -> None:
        for plan in self.plans:
            self.procs[plan.name] = start_group(list(plan.cmd), plan.log_file, ros_env(plan.env))

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

    def first_error(self) -> str:
        """The first error line of this back end's logs (what a person needs to see first), or ''."""
        for plan in self.plans:
            line = first_error_line(plan.log_file)
            if line:
                return line
        return ""


def first_error_line(log_file: Path) -> str:
    """The first line of a log that reports an error (a node's 'fatal:' line, an exception, an ERROR log)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    marks = ("fatal:", "Error:", "Exception:", "[ERROR]")
    return next((ln.strip() for ln in lines if any(m in ln for m in marks)), "")


@dataclass
class CrashGuard:
    """The crash-loop rule shared by every start path: a back end that exits `limit` + 1 times in a row with
    no attempt stored in between is not restarted again."""

    limit: int = 5
    streak: int = 0
    done_at_exit: int = -1

    def exited(self, done: int) -> bool:
        """Count an exit, `done` being the campaign's stored attempts now; True when it is time to give up."""
        self.streak = self.streak + 1 if done == self.done_at_exit else 1
        self.done_at_exit = done
        return self.streak > self.limit
