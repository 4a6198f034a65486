"""Isolation of concurrent runs on one host: a ROS_DOMAIN_ID per run, held with an OS file lock.

Two Myriad runs on one host (two `myriad collect`, a collect beside a `ros2 launch`, two workspaces, two users)
never share a DDS domain: each run holds an exclusive `flock` on `<tmp>/myriad-ros-domains/<id>.lock` for as long
as it runs; the kernel drops the lock when the holder dies, however it dies. A domain asked for explicitly
(`ROS_DOMAIN_ID` in the environment) is taken only when no other run holds it, or when the holder is this
process or one of its ancestors (a harness, such as the test session, that holds a domain for what it starts).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Fast DDS maps domain d to UDP ports 7400 + 250 d + ...; above 232 they leave the port range.
MAX_DOMAIN = 232
LOCK_DIR = Path(tempfile.gettempdir()) / "myriad-ros-domains"


class IsolationError(RuntimeError):
    """The requested domain or run is held by another live run; the message says by whom and what to do."""


@dataclass
class HeldLock:
    """An exclusive flock on a file, with who holds it written inside; released on close or process exit."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_lock(path: Path, owner: dict) -> HeldLock | None:
    """Take an exclusive lock on `path` (created if needed) and record `owner` in it; None if held elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({**owner, "pid": os.getpid(), "since": time.time()}).encode(), 0)
    return HeldLock(path, fd)


def _owner_pid(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_ancestor(pid: int) -> bool:
    """Whether `pid` is this process's parent, grandparent, ... (a harness that holds a domain for us)."""
    current = os.getppid()
    while current > 1:
        if current == pid:
            return True
        try:
            current = int(Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def lock_owner(path: Path) -> str:
    """A short description of who holds the lock at `path` (as recorded by its holder)."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return "another process"
    what = ", ".join(f"{k} {v}" for k, v in info.items() if k in ("run", "workspace") and v)
    return f"pid {info.get('pid', '?')}" + (f" ({what})" if what else "")


def _lock_dir() -> Path:
    """The shared lock directory, writable by every user of the host (sticky, like /tmp)."""
    if not LOCK_DIR.is_dir():
        LOCK_DIR.mkdir(mode=0o1777, exist_ok=True)
        try:
            os.chmod(LOCK_DIR, 0o1777)
        except PermissionError:  # created concurrently by another user
            pass
    return LOCK_DIR


@dataclass
class DomainClaim:
    """A ROS_DOMAIN_ID held by this process for one run."""

    domain_id: int
    lock: HeldLock

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> DomainClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def parse_domain(value: str | int, where: str = "ROS_DOMAIN_ID") -> int:
    """A domain id from the environment or an option, checked: an integer 0..MAX_DOMAIN."""
    try:
        domain = int(value)
    except (TypeError, ValueError):
        raise IsolationError(f"{where}: expected an integer 0..{MAX_DOMAIN}, got {value!r}") from None
    if not 0 <= domain <= MAX_DOMAIN:
        raise IsolationError(f"{where}: expected an integer 0..{MAX_DOMAIN}, got {domain}")
    return domain


def claim_domain(requested: str | int | None = None, run: str = "", workspace: str = "") -> DomainClaim:
    """Hold a DDS domain for this run: `requested` if given (error if another run holds it), else the first
    free one in 1..MAX_DOMAIN (0 stays for the user's own ROS 2 tools)."""
    owner = {"run": run, "workspace": workspace}
    d = _lock_dir()
    if requested is not None and str(requested).strip() != "":
        domain = parse_domain(requested)
        lock = try_lock(d / f"{domain}.lock", owner)
        holder = _owner_pid(d / f"{domain}.lock") or 0
        if lock is None and (holder == os.getpid() or _is_ancestor(holder)):
            return DomainClaim(
                domain, HeldLock(d / f"{domain}.lock", -1)
            )  # held for us already (or above us)
        if lock is None:
            raise IsolationError(
                f"ROS_DOMAIN_ID {domain} is in use by another Myriad run ({lock_owner(d / f'{domain}.lock')}); "
                "set ROS_DOMAIN_ID to a free domain, or unset it to get one"
            )
        return DomainClaim(domain, lock)
    for domain in range(1, MAX_DOMAIN + 1):
        lock = try_lock(d / f"{domain}.lock", owner)
        if lock is not None:
            return DomainClaim(domain, lock)
    raise IsolationError(f"every ROS domain 1..{MAX_DOMAIN} is held by another Myriad run on this host")


def lock_run(run_dir: Path, run: str) -> HeldLock:
    """Hold `run_dir` for this process: a campaign runs at most once at a time per workspace."""
    lock = try_lock(run_dir / ".lock", {"run": run})
    if lock is None:
        raise IsolationError(
            f"campaign {run!r} is already running from this workspace ({lock_owner(run_dir / '.lock')}); "
            "wait for it, stop it, or choose another --name"
        )
    return lock
