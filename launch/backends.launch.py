"""ROS 2 launch file: N Myriad back ends from config/backend.yaml (for a full ROS 2 install: `ros2 launch`).

    ros2 launch launch/backends.launch.py backends:=2 campaign:=my-campaign mongo_uri:=mongodb://127.0.0.1:27017/

A thin adapter: the description is loaded, validated and rendered by myriad_frontend.description, exactly as
`myriad collect` does, so both start the same graph.
"""

import os
import tempfile
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from myriad_frontend.description import load_description

WS = Path(os.environ.get("MYRIAD_WS", Path(__file__).resolve().parents[1]))


def backends(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    desc = load_description(arg("description"))
    run_dir = Path(tempfile.mkdtemp(prefix="myriad_launch_"))
    values = {
        "ws": WS,
        "mongo_uri": arg("mongo_uri"),
        "database": arg("database"),
        "campaign": arg("campaign"),
    }
    groups = []
    for i in range(int(arg("backends"))):
        rendered = desc.render(index=i, backend=f"b{i}", run_dir=run_dir / f"b{i}", **values)
        params = run_dir / f"b{i}.yaml"
        params.write_text(rendered.params_yaml())
        nodes = [
            Node(
                package="myriad_runtime",
                executable="container",
                name=proc.name,
                arguments=["--nodes", *(n.cls for n in proc.nodes)],
                parameters=[str(params)],
                remappings=list(rendered.remappings.items()),
                additional_env={"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"},
                output="screen",
            )
            for proc in rendered.processes
        ]
        groups.append(GroupAction([PushRosNamespace(rendered.namespace), *nodes]))
    return groups


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("backends", default_value="1"),
            DeclareLaunchArgument("description", default_value=str(WS / "config" / "backend.yaml")),
            DeclareLaunchArgument("mongo_uri", default_value="mongodb://127.0.0.1:27117/"),
            DeclareLaunchArgument("database", default_value="myriad"),
            DeclareLaunchArgument("campaign", default_value="default"),
            OpaqueFunction(function=backends),
        ]
    )
