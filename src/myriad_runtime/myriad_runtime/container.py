"""Run one or several nodes in one process and executor, with a clean shutdown on SIGINT/SIGTERM.

`container --nodes pkg.module:Class [...] --ros-args ...` is what the front end and the launch file start for a
process of the back-end description (several nodes sharing a process, as ROS 2 composition does).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from pathlib import Path

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from myriad_runtime import EXECUTORS
from myriad_runtime.executor import LeanExecutor
from myriad_runtime.loading import LoadError, load_object

SPIN_S = 0.1


def load_class(path: str) -> type[Node]:
    """The node class `package.module:Class` (LoadError naming the path and what was expected)."""
    cls = load_object(path, "node class")
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise LoadError(f"node class {path!r} is not an rclpy Node subclass")
    return cls


def make_executor(threads: int = 1, context: rclpy.Context | None = None, kind: str = "lean") -> Executor:
    """The executor of a node process. One thread: myriad_runtime.executor.LeanExecutor, or with kind "rclpy"
    rclpy's SingleThreadedExecutor; more threads: rclpy's MultiThreadedExecutor."""
    if kind not in EXECUTORS:
        raise ValueError(f"executor {kind!r}: expected one of {', '.join(EXECUTORS)}")
    if threads > 1:
        return MultiThreadedExecutor(num_threads=threads, context=context)
    return LeanExecutor(context=context) if kind == "lean" else SingleThreadedExecutor(context=context)


def run_nodes(
    classes: list[type[Node]], args: list[str] | None = None, threads: int = 1, executor_kind: str = "lean"
) -> None:
    """rclpy.init, construct each node, spin them together, and shut down in order on SIGINT/SIGTERM or error:
    first each node's `close()` while the context is still valid (the logger flushes its attempts, the
    controllers stop), then the executor and the nodes, then rclpy.

    One executor thread by default, as ROS 2's component_container: no callback blocks on another node
    (myriad_runtime.calls), so one thread serves nested calls, and a back end spends 3-9 % less CPU per grasp
    attempt than with four (bench/bench_collect.py, 1 and 2 back ends, interleaved runs)."""
    # Our own handlers, not rclpy's: rclpy's would invalidate the context at the first signal, under callbacks
    # still running. Python runs them in the main thread, which wakes from rcl_wait at least every SPIN_S.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _n, _f: stop.set())
    nodes: list[Node] = []
    executor = make_executor(threads, kind=executor_kind)
    code = 0
    try:
        for cls in classes:
            node = cls()
            nodes.append(node)
            executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_S)
    except ExternalShutdownException:
        pass
    except Exception as exc:  # a node failing to start (or a callback failing) must say why and where, exit 1
        names = " ".join(c.__name__ for c in classes)
        print(f"[{names}] fatal: {type(exc).__name__}: {exc} ({_origin(exc)})", file=sys.stderr)
        code = 1
    finally:
        # Under `ros2 launch` every process gets SIGINT twice (terminal and launch) and later SIGTERM: once the
        # shutdown is under way, further signals must not interrupt the nodes' cleanup (flushing attempts).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        for node in reversed(nodes):
            _close(node)
        executor.shutdown(timeout_sec=1.0)
        for node in reversed(nodes):
            _destroy(node)
        rclpy.try_shutdown()
    sys.exit(code)


def _origin(exc: BaseException) -> str:
    """Where `exc` was raised: the innermost frame of its traceback, as `at file:line in function`."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "no traceback"
    f = frames[-1]
    return f"at {Path(f.filename).name}:{f.lineno} in {f.name}"


def _close(node: Node) -> None:
    """The node's own `close()`, if it has one; a failure is one line on stderr, not a traceback."""
    close = getattr(node, "close", None)
    try:
        if close:
            close()
    except Exception as exc:
        print(f"[{node.get_name()}] error while closing: {type(exc).__name__}: {exc}", file=sys.stderr)


def _destroy(node: Node) -> None:
    try:
        node.destroy_node()
    except Exception as exc:
        print(f"[{node.get_name()}] error while shutting down: {type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ros_args = argv[argv.index("--ros-args") :] if "--ros-args" in argv else []
    own = argv[: len(argv) - len(ros_args)]
    parser = argparse.ArgumentParser(prog="container", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", nargs="+", required=True, help="node classes, package.module:Class")
    parser.add_argument("--threads", type=int, default=1, help="executor threads (default 1)")
    parser.add_argument(
        "--executor", choices=EXECUTORS, default="lean",
        help="with one thread: lean (myriad_runtime.executor, default) or rclpy's SingleThreadedExecutor",
    )  # fmt: skip
    opts = parser.parse_args(own)
    try:
        classes = [load_class(p) for p in opts.nodes]
    except LoadError as exc:
        parser.error(str(exc))
    run_nodes(classes, [sys.argv[0], *ros_args], threads=opts.threads, executor_kind=opts.executor)


if __name__ == "__main__":
    main()
