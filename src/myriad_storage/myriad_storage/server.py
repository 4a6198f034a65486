"""The local default database: a SecantusDB server (``secantusd-py``) in its own session, kept in data_dir.

Files in data_dir: ``db/`` (WiredTiger home), ``secantusd.pid`` ("PID PORT"), ``secantusd.log``.

Port: ``--db-port``, else $MYRIAD_DB_PORT, else one derived from the data directory's path (27200..27999), so
two workspaces on one host get their own servers; a server already running for data_dir is reused on its port.

The server runs with ``--sync-on-commit`` by default: without it SecantusDB 0.7.0b3 loses writes acknowledged
in the last ~0.5 s when the server is SIGKILLed (measured), and an acknowledged attempt must survive that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ENV_URI = "MYRIAD_MONGO_URI"
ENV_PORT = "MYRIAD_DB_PORT"
DEFAULT_PORT = 27117


class ServerError(RuntimeError):
    """The local database server cannot be started (port taken, server exited, not found)."""


WORKSPACE_PORTS = range(27200, 28000)  # where workspace_port puts a workspace's server


def workspace_port(data_dir: Path) -> int:
    """The default port of the local server of ``data_dir``: stable, and mostly different between workspaces
    (a hash; resolve_uri moves on when another program holds it)."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).digest()
    return WORKSPACE_PORTS[int.from_bytes(digest[:4], "big") % len(WORKSPACE_PORTS)]


def _free_workspace_port(host: str, first: int) -> int:
    """``first``, else the next port of WORKSPACE_PORTS (wrapping) that nothing listens on: two workspaces
    whose ports collide each get a server. None free: ``first`` (starting on it names the taken port)."""
    start = WORKSPACE_PORTS.index(first)
    for k in range(len(WORKSPACE_PORTS)):
        port = WORKSPACE_PORTS[(start + k) % len(WORKSPACE_PORTS)]
        if not _port_open(host, port):
            return port
    return first


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) secantusd process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z" and b"secantusd" in cmdline


def _server_exe() -> str:
    exe = Path(sys.executable).parent / "secantusd-py"
    if exe.exists():
        return str(exe)
    found = shutil.which("secantusd-py")
    if not found:
        raise ServerError(
            f"secantusd-py not found next to {sys.executable} nor on PATH (pip install secantusdb)"
        )
    return found


class LocalServer:
    """A SecantusDB server on host:port storing in ``data_dir/db``, started detached on demand."""

    def __init__(
        self, data_dir: Path, port: int = DEFAULT_PORT, host: str = "127.0.0.1", sync_on_commit: bool = True
    ) -> None:
        self.data_dir = Path(data_dir)
        self.sync_on_commit = sync_on_commit
        self.port = port
        self.host = host
        self.pid_file = self.data_dir / "secantusd.pid"
        self.log_file = self.data_dir / "secantusd.log"
        self._proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        """Without retryable writes: SecantusDB 0.7 keeps a record of each for 30 min and scans them all at every
        write, sorting them once it holds 10,000 (measured: 0.8 ms of server CPU per update without, 1.3 ms with on
        a fresh server, 7-8 ms after 11,000 writes; a collection makes ~8 writes per attempt). Store does not rely
        on the driver's retry: an attempt is stored once by its key, and a failed write is retried from the spool."""
        return f"mongodb://{self.host}:{self.port}/?retryWrites=false"

    def pid(self) -> int | None:
        """The pid recorded in the pid file, if that process is alive."""
        return self.recorded()[0]

    def recorded(self) -> tuple[int | None, int]:
        """(pid if alive, port) from the pid file (files of earlier versions hold only a pid: DEFAULT_PORT)."""
        try:
            fields = self.pid_file.read_text().split()
            pid, port = int(fields[0]), int(fields[1]) if len(fields) > 1 else DEFAULT_PORT
        except (OSError, ValueError, IndexError):
            return None, self.port
        return (pid if _alive(pid) else None), port

    def is_running(self) -> bool:
        """True if our server (live pid file) is listening on the port."""
        return self.pid() is not None and _port_open(self.host, self.port)

    def ensure_running(self, timeout: float = 120.0) -> str:
        """Start the server unless it already runs; return its mongodb:// URI. A large database takes a while to
        open (3.5 GB: 12-15 s on an idle 2-core host, over 20 s while another collection runs), so the wait ends
        early only when the server exits."""
        if self.is_running():
            return self.uri
        if _port_open(self.host, self.port):
            raise ServerError(
                f"port {self.host}:{self.port} is in use by a process that is not the Myriad database server "
                f"of {self.data_dir}; choose another port (--db-port or ${ENV_PORT}) or pass a URI"
            )
        (self.data_dir / "db").mkdir(parents=True, exist_ok=True)
        cmd = [
            _server_exe(),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir / "db"),
        ]
        if self.sync_on_commit:
            cmd.append("--sync-on-commit")
        with open(self.log_file, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid} {self.port}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerError(
                    f"database server exited with code {self._proc.returncode} while starting on "
                    f"{self.host}:{self.port}; log tail ({self.log_file}):\n{self._log_tail()}"
                )
            if _port_open(self.host, self.port, timeout=0.2):
                return self.uri
            time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"database server did not open {self.host}:{self.port} within {timeout:.0f} s; "
            f"log tail ({self.log_file}):\n{self._log_tail()}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL after ``timeout``)."""
        pid = self._proc.pid if self._proc is not None and self._proc.poll() is None else self.pid()
        if pid is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(pid, sig)
                except ProcessLookupError:
                    break
                if self._wait(pid, timeout):
                    break
        self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def _wait(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


def resolve_uri(
    cli_uri: str | None, data_dir: Path, port: int | None = None
) -> tuple[str, LocalServer | None]:
    """The database URI: ``cli_uri``, else $MYRIAD_MONGO_URI, else a local server in data_dir (started) on
    ``port``, else $MYRIAD_DB_PORT, else the running server's port, else ``workspace_port(data_dir)`` or, if
    another program listens there, the next free port after it."""
    if cli_uri:
        return cli_uri, None
    env = os.environ.get(ENV_URI, "").strip()
    if env:
        return env, None
    if port is None and os.environ.get(ENV_PORT, "").strip():
        try:
            port = int(os.environ[ENV_PORT])
        except ValueError:
            raise ValueError(f"${ENV_PORT}: expected a port number, got {os.environ[ENV_PORT]!r}") from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"database port: expected 1..65535, got {port}")
    server = LocalServer(data_dir, port or workspace_port(data_dir))
    pid, running_port = server.recorded()
    if pid is not None and running_port != server.port:
        if port is not None:
            raise ServerError(
                f"the database server of {data_dir} already runs on port {running_port} (pid {pid}), "
                f"not {port}; use that port or stop it"
            )
        server.port = running_port
    elif pid is None and port is None:  # not running, no port chosen: the default, unless someone holds it
        server.port = _free_workspace_port(server.host, server.port)
    return server.ensure_running(), server
