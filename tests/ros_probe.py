"""What a user's ROS 2 tools see, from a fresh process: `ros2 node list`, `ros2 param list` and `ros2 param get`.

    python tests/ros_probe.py --wait NODE [NODE ...] [--list NODE] [--get NODE:NAME,NAME] [--timeout S]

Waits until every fully qualified NODE is discovered, then prints one JSON object: "nodes" (all discovered),
"list" ({node: parameter names}) and "get" ({node: {name: value}}). Exit 3 (JSON with what was seen) if the nodes
do not all appear within the timeout. Tests run it instead of asking their own long-lived test process, whose
DDS participants have come and gone many times over a session.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import rclpy
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.node import Node
from rclpy.parameter import parameter_value_to_python


def node_names(node: Node) -> list[str]:
    return sorted(f"{ns.rstrip('/')}/{name}" for name, ns in node.get_node_names_and_namespaces())


def call(node: Node, srv_type, name: str, request, timeout: float):
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=timeout):
        raise SystemExit(f"ros_probe: service {name} not available within {timeout:g} s")
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        raise SystemExit(f"ros_probe: no answer from {name} within {timeout:g} s")
    return future.result()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", nargs="+", default=[])
    parser.add_argument("--list", nargs="*", default=[])
    parser.add_argument("--get", nargs="*", default=[])
    parser.add_argument("--timeout", type=float, default=120.0)
    opts = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("ros_probe")
    deadline = time.monotonic() + opts.timeout
    while not set(opts.wait) <= set(node_names(node)):
        if time.monotonic() > deadline:
            print(json.dumps({"nodes": node_names(node)}))
            sys.exit(3)
        rclpy.spin_once(node, timeout_sec=0.2)
    out: dict = {"nodes": node_names(node), "list": {}, "get": {}}
    for target in opts.list:
        res = call(node, ListParameters, f"{target}/list_parameters", ListParameters.Request(), 30.0)
        out["list"][target] = sorted(res.result.names)
    for spec in opts.get:
        target, names = spec.split(":")
        request = GetParameters.Request(names=names.split(","))
        res = call(node, GetParameters, f"{target}/get_parameters", request, 30.0)
        out["get"][target] = {k: parameter_value_to_python(v) for k, v in zip(request.names, res.values)}
    print(json.dumps(out))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
