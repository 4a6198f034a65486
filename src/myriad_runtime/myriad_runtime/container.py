"""Run one or several nodes in one process and executor, with a clean shutdown on SIGINT/SIGTERM.

`container --nodes pkg.module:Class [...] --ros-args ...` is what the front end and the launch file start for a
process of the back-end description (several nodes sharing a process, as ROS 2 composition does).
"""

from __future__ import annotations

import argparse
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from myriad_runtime.loading import LoadError, load_object


def load_class(path: str) -> type[Node]:
    """The node class `package.module:Class` (LoadError naming the path and what was expected)."""
    cls = load_object(path, "node class")
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise LoadError(f"node class {path!r} is not an rclpy Node subclass")
    return cls


def run_nodes(classes: list[type[Node]], args: list[str] | None = None, threads: int = 4) -> None:
    """rclpy.init, construct each node, spin them together, and shut down cleanly on signal or error."""
    # rclpy's own handlers (SIGINT, SIGTERM) wake the executor from rcl_wait; Python-level handlers would not run.
    rclpy.init(args=args)
    nodes: list[Node] = []
    executor = MultiThreadedExecutor(num_threads=threads)
    code = 0
    try:
        for cls in classes:
            node = cls()
            nodes.append(node)
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # a node failing to start must say why, then exit non-zero
        if rclpy.ok():
            print(
                f"[{' '.join(c.__name__ for c in classes)}] fatal: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            code = 1
    finally:
        for node in reversed(nodes):
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ros_args = argv[argv.index("--ros-args") :] if "--ros-args" in argv else []
    own = argv[: len(argv) - len(ros_args)]
    parser = argparse.ArgumentParser(prog="container", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", nargs="+", required=True, help="node classes, package.module:Class")
    parser.add_argument("--threads", type=int, default=4)
    opts = parser.parse_args(own)
    try:
        classes = [load_class(p) for p in opts.nodes]
    except LoadError as exc:
        parser.error(str(exc))
    run_nodes(classes, [sys.argv[0], *ros_args], threads=opts.threads)


if __name__ == "__main__":
    main()
