"""Hardening: every operator mistake of `myriad` is a one-line message with an exit code saying its class
(2 bad input, 3 storage, 1 run failure), --debug shows the traceback. Real CLI processes, real servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import collect_command, free_port

from myriad_storage.server import WORKSPACE_PORTS, LocalServer, workspace_port
from myriad_storage.store import Store


def myriad(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "myriad_frontend.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def one_line(out: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The error line, after checking the exit code, that it is the only line and names `words`."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code, out.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("myriad: "), out.stderr[-3000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "object_count=[1"], ["--set 'object_count=[1'", "not a valid YAML"]),
        (["--seed", "99999999999999999999"], ["seed: expected an integer 0..2**63-1"]),
        (["--set", "seed=5"], ["'seed' is not a grasp parameter", "--seed"]),
        (["--attempts", "1000000000"], ["attempts: expected an integer 1..1,000,000", "several campaigns"]),
        (["--backends", "100000"], ["--backends 100000: this machine hosts at most", "--force"]),
    ],
)
def test_bad_collect_options_are_one_line_usage_errors(mongo_uri, args, words):
    one_line(myriad(*collect_command(mongo_uri, "--name", "never", *args)[3:]), 2, *words)
    assert Store(mongo_uri, "t").campaign("never") is None


def test_more_local_backends_than_ros_tools_discover_is_a_warning():
    """32 local back ends: the warning comes before anything starts (here the database is unreachable: exit 3)."""
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    for backends, warned in ((31, False), (32, True)):
        out = myriad("collect", "--mongo-uri", uri, "--backends", str(backends), "--force", "--name", "never")
        assert out.returncode == 3, out.stderr
        assert ("discovers only those among the first 32 DDS participants" in out.stderr) == warned, (
            out.stderr
        )


def test_bad_database_names_and_uris(mongo_uri):
    one_line(
        myriad("status", "--mongo-uri", mongo_uri, "--database", "bad$name"), 2, "database name", "bad$name"
    )
    line = one_line(myriad("status", "--mongo-uri", "mongodb://u:s3cret@127.0.0.1:notaport/"), 2, "URI")
    assert "s3cret" not in line and "u:***@" in line


def test_wrong_password_is_a_storage_error(tmp_path):
    from secantus import SecantusDBServer

    path = str(tmp_path / "auth")
    open_server = SecantusDBServer(port=0, storage_path=path)
    open_server.start()
    import pymongo

    pymongo.MongoClient(open_server.uri).admin.command("createUser", "alice", pwd="right", roles=["root"])
    open_server.stop()
    server = SecantusDBServer(port=0, storage_path=path, require_auth=True)
    server.start()
    try:
        port = server.uri.rsplit(":", 1)[1].strip("/")
        out = myriad("status", "--mongo-uri", f"mongodb://alice:wrong@127.0.0.1:{port}/")
        line = one_line(out, 3, "refused the credentials", "alice:***@")
        assert "wrong" not in line
        ok = myriad("status", "--mongo-uri", f"mongodb://alice:right@127.0.0.1:{port}/")
        assert ok.returncode == 0 and "no campaigns" in ok.stdout, ok.stderr
    finally:
        server.stop()


def _workspace_env(ws: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MYRIAD_MONGO_URI", "MYRIAD_DB_PORT")}
    return {**env, "MYRIAD_WS": str(ws), **extra}


def test_a_workspace_whose_port_is_taken_starts_its_server_on_the_next_free_one(tmp_path):
    """A workspace's default port is a hash of its path, so two workspaces can draw the same one: when another
    program (another workspace's server) holds it, this workspace's server starts on the next free port of the
    range, and later commands find it there. (CI once drew the same port for two paths.)"""
    data = tmp_path / "data"
    assert workspace_port(data) == workspace_port(tmp_path / "." / "data")  # stable
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", workspace_port(data)))
            taken.listen()
        except OSError:  # already held by another program: the same situation
            pass
        try:
            out = myriad("status", env=_workspace_env(tmp_path))
            assert out.returncode == 0 and "no campaigns" in out.stdout, out.stderr
            pid, port = LocalServer(data).recorded()
            assert pid is not None and port != workspace_port(data) and port in WORKSPACE_PORTS, port
            again = myriad("status", env=_workspace_env(tmp_path))  # finds the server on its recorded port
            assert again.returncode == 0 and LocalServer(data).recorded() == (pid, port), again.stderr
        finally:
            LocalServer(data).stop()


def test_local_database_port_is_choosable(tmp_path):
    port = free_port()
    env = _workspace_env(tmp_path, MYRIAD_DB_PORT=str(port))
    try:
        out = myriad("status", env=env)
        assert out.returncode == 0 and "no campaigns" in out.stdout, out.stderr
        assert LocalServer(tmp_path / "data", port).is_running()
        recorded = LocalServer(tmp_path / "data").recorded()
        assert recorded[1] == port, recorded
        again = myriad("status", env=_workspace_env(tmp_path))  # no port given: the running server is reused
        assert again.returncode == 0 and LocalServer(tmp_path / "data").recorded() == recorded, again.stderr
    finally:
        LocalServer(tmp_path / "data", port).stop()
    with socket.socket() as taken:  # another program on the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        other = taken.getsockname()[1]
        out = myriad("status", "--db-port", str(other), env=_workspace_env(tmp_path / "ws2"))
        one_line(out, 3, f"port 127.0.0.1:{other} is in use", "--db-port")


def test_dashboard_port_in_use(mongo_uri):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = myriad("dashboard", "--mongo-uri", mongo_uri, "--port", str(port), timeout=60)
    one_line(out, 2, f"cannot listen on 127.0.0.1:{port}", "choose another port")


def test_campaign_files_binary_empty_and_without_attempts(mongo_uri, tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    one_line(myriad(*collect_command(mongo_uri, "--campaign", str(binary))[3:]), 2, str(binary))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    one_line(
        myriad(*collect_command(mongo_uri, "--campaign", str(empty))[3:]), 2, str(empty), "empty", "attempts"
    )
    partial = tmp_path / "partial.yaml"
    partial.write_text("name: partial\n")
    one_line(
        myriad(*collect_command(mongo_uri, "--campaign", str(partial))[3:]), 2, str(partial), "'attempts'"
    )
    assert Store(mongo_uri, "t").campaign("partial") is None


def test_status_of_an_unknown_campaign(storage_store):
    storage_store.create_campaign("known", [{"seed": 1}])
    db = storage_store.db.name
    out = myriad("status", "--mongo-uri", storage_store.uri, "--database", db, "no-such-campaign")
    one_line(out, 2, "no campaign named 'no-such-campaign'", "known: known")
    ok = myriad("status", "--mongo-uri", storage_store.uri, "--database", db, "known")
    assert ok.returncode == 0 and "known: 0/1 done" in ok.stdout


def test_debug_shows_the_traceback(mongo_uri):
    out = myriad("status", "--mongo-uri", mongo_uri, "--database", "bad$name", "--debug")
    assert out.returncode == 2 and "Traceback" in out.stderr and "myriad: database name" in out.stderr


def test_unreachable_ray_address_fails_fast(mongo_uri):
    out = myriad(
        *collect_command(mongo_uri, "--name", "noray", "--ray", f"127.0.0.1:{free_port()}")[3:], timeout=60
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]  # after the campaign banner
    assert "myriad: --ray" in last and "no Ray head answers" in last and "ray start --head" in last
    assert Store(mongo_uri, "t").campaign("noray") is None


def test_ray_address_that_is_not_a_ray_head_and_ctrl_c(mongo_uri):
    import threading

    with socket.socket() as silent:  # accepts connections, never answers (as a wrong service might)
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        out = myriad(*collect_command(mongo_uri, "--name", "noray2", "--ray", address)[3:], timeout=60)
        assert out.returncode == 2 and f"no Ray head answers at {address}" in out.stderr.splitlines()[-1]
    with socket.socket() as silent:  # a fresh one: no connection of the run above waiting in its backlog
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        accepted, held = threading.Event(), []  # the accepted connection stays open: no reset to the CLI
        threading.Thread(target=lambda: (held.append(silent.accept()), accepted.set()), daemon=True).start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "myriad_frontend.cli", *collect_command(mongo_uri, "--ray", address)[3:]],
            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        try:
            assert accepted.wait(60), "the CLI never probed the address"
            proc.send_signal(signal.SIGINT)  # Ctrl-C while it waits for the head
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "myriad: interrupted"


def test_uri_without_scheme_and_short_unreachable_message():
    one_line(myriad("status", "--mongo-uri", "notauri"), 2, "expected mongodb://HOST:PORT/", "'notauri'")
    port = free_port()
    line = one_line(myriad("status", "--mongo-uri", f"mongodb://127.0.0.1:{port}/", timeout=60), 3)
    assert (
        line
        == f"myriad: MongoDB not reachable at mongodb://127.0.0.1:{port}/: 127.0.0.1:{port}: [Errno 111] Connection refused"
    )


@pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)  # the dropped exception, printed
def test_a_stop_signal_whose_exception_python_dropped_still_stops_the_run():
    """Python only prints a KeyboardInterrupt raised inside a finalizer (`__del__`): a Ctrl-C that landed in one
    of pymongo's while the CLI polled let the run go on to its end. The run's polling loop still sees it."""
    from myriad_frontend.processes import raise_if_interrupted, stop_on_signals

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):  # the handler runs in here: its KeyboardInterrupt is printed, not raised
                pass

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop_on_signals()
        raise_if_interrupted()  # no signal yet
        try:
            Finalized()  # no reference kept: finalized at once
        except KeyboardInterrupt:
            pytest.fail("the KeyboardInterrupt left the finalizer: the case under test did not arise")
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
        stop_on_signals()  # the next run starts without it
        raise_if_interrupted()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--learned-attempts", "0"], ["--learned-attempts: expected an integer 1..1,000,000, got 0"]),
        (["--random-attempts", "2000000"], ["--random-attempts: expected an integer 1..1,000,000"]),
        (["--min-attempts", "1"], ["--min-attempts: expected at least 2, got 1"]),
        (["--random-attempts", "10"], ["--min-attempts: expected at most --random-attempts (10", "got 20"]),
        (["--seed", str(2**63 - 1)], ["--seed: expected an integer 0..2**63-2", "--seed + 1"]),
        (["--set", "object_count=0"], ["loop.params.object_count: expected an integer 1..20"]),
    ],
)
def test_bad_loop_options_are_refused_before_anything_starts(args, words):
    """Every option of `myriad loop` is checked before the database is contacted (unreachable here: exit 3 if it
    came first), so before any attempt is collected (the counts were checked after collecting and training)."""
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    one_line(myriad("loop", "--mongo-uri", uri, "--name", "never", *args, timeout=60), 2, *words)


@pytest.mark.parametrize("command", ["collect", "loop"])
def test_a_bad_description_is_refused_before_the_database_server_starts(tmp_path, command):
    """A missing or malformed --description is one line naming the file, and no database server was started for
    the workspace (its data directory, where the server keeps its pid file, log and database, is not made)."""
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("namespace: [/myriad\n")
    data = tmp_path / "data"
    for path, what in ((tmp_path / "missing.yaml", "file not found"), (malformed, "malformed YAML")):
        try:
            out = myriad(command, "--name", "never", "--description", str(path), env=_workspace_env(tmp_path))
            one_line(out, 2, str(path), what)
            assert not data.exists() and LocalServer(data).pid() is None
        finally:
            LocalServer(data).stop()
