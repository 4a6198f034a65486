"""The local default database: a SecantusDB server (``secantusd-py``) in its own session, kept in data_dir.

Files in data_dir: ``db/`` (WiredTiger home), ``secantusd.pid``, ``secantusd.log``.

The server runs with ``--sync-on-commit`` by default: without it SecantusDB 0.7.0b3 loses writes acknowledged
in the last ~0.5 s when the server is SIGKILLed (measured), and an acknowledged attempt must survive that.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ENV_URI = "MYRIAD_MONGO_URI"
DEFAULT_PORT = 27117


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
        raise FileNotFoundError(
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
        return f"mongodb://{self.host}:{self.port}/"

    def pid(self) -> int | None:
        """The pid recorded in the pid file, if that process is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def is_running(self) -> bool:
        """True if our server (live pid file) is listening on the port."""
        return self.pid() is not None and _port_open(self.host, self.port)

    def ensure_running(self, timeout: float = 20.0) -> str:
        """Start the server unless it already runs; return its mongodb:// URI."""
        if self.is_running():
            return self.uri
        if _port_open(self.host, self.port):
            raise RuntimeError(
                f"port {self.host}:{self.port} is in use by a process that is not the Myriad database server "
                f"of {self.data_dir} (no live pid in {self.pid_file}); pass a URI or choose another port"
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
        self.pid_file.write_text(f"{self._proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"database server exited with code {self._proc.returncode} while starting on "
                    f"{self.host}:{self.port}; log tail ({self.log_file}):\n{self._log_tail()}"
                )
            if _port_open(self.host, self.port, timeout=0.2):
                return self.uri
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
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


def resolve_uri(cli_uri: str | None, data_dir: Path) -> tuple[str, LocalServer | None]:
    """The database URI: ``cli_uri``, else $MYRIAD_MONGO_URI, else a local server in data_dir (started)."""
    if cli_uri:
        return cli_uri, None
    env = os.environ.get(ENV_URI, "").strip()
    if env:
        return env, None
    server = LocalServer(data_dir)
    return server.ensure_running(), server
