"""ROS 2 launch file: a grasp campaign on N Myriad back ends from config/backend.yaml (a full ROS 2 install).

    ros2 launch launch/backends.launch.py backends:=2 attempts:=100 seed:=7
    ros2 launch launch/backends.launch.py backends:=2 campaign_file:=config/campaigns/tray_sweep.yaml
    ros2 launch launch/backends.launch.py campaign:=my-campaign    # resume a campaign by name

A thin adapter over what `myriad collect` runs (myriad_frontend.run / myriad_frontend.plan): the same campaign
creation, run directory, domain lock, command lines, environments and parameter files. Differences are the
ROS 2 launch ones: processes are launch actions (output on the screen), respawned by launch; a back end that
crash-loops ends the launch with a non-zero status; the launch ends when the campaign is complete (unless
keep_running:=true). The database URI comes from $MYRIAD_MONGO_URI (keep passwords out of command lines), the
mongo_uri argument, or the workspace's local SecantusDB. The DDS domain is $ROS_DOMAIN_ID (default 0), held
for this run: a second run on the same domain is refused instead of answering this one's services.

Processes are launch's ExecuteProcess on purpose, not launch_ros' Node: Node builds its own command line
(`-r __node:=NAME` renames every node of a composed process; an including file's PushRosNamespace or
SetParameter would add more), while these must be exactly the planned ones.
"""

import sys

import launch.logging
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit, OnShutdown
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration

from myriad_frontend.launching import (
    ARGUMENTS,
    RESPAWN_DELAY_S,
    LaunchArgs,
    campaign_complete,
    start_run,
    wait_command,
)


def _backends(context):
    args = LaunchArgs.parse({k: LaunchConfiguration(k).perform(context) for k in ARGUMENTS})
    run, plans, summary = start_run(args, python=sys.executable)
    actions = [LogInfo(msg=summary)]
    for plan in plans:
        proc = ExecuteProcess(
            cmd=list(plan.cmd),
            additional_env=plan.env,
            name=plan.label,
            output="screen",
            respawn=True,
            respawn_delay=RESPAWN_DELAY_S,
        )

        def exited(event, ctx, plan=plan):
            if ctx.is_shutdown:
                return None
            # Raises CrashLoop after too many deaths with nothing stored: launch then shuts down, exit status 1.
            what = f"{plan.name} (exit {event.returncode})"
            logs = launch.logging.launch_config.log_dir
            return LogInfo(msg=run.backend_exited(plan.backend, what, "respawned by launch", logs))

        actions += [proc, RegisterEventHandler(OnProcessExit(target_action=proc, on_exit=exited))]
    if not args.keep_running:
        watcher = ExecuteProcess(
            cmd=wait_command(run, sys.executable), additional_env=run.env, name="campaign", output="screen"
        )

        def finished(event, ctx):
            if ctx.is_shutdown:
                return None
            return EmitEvent(event=Shutdown(reason=campaign_complete(run, event.returncode)))

        actions += [watcher, RegisterEventHandler(OnProcessExit(target_action=watcher, on_exit=finished))]
    actions.append(RegisterEventHandler(OnShutdown(on_shutdown=lambda event, ctx: run.close())))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(k, default_value=v, description=d) for k, (v, d) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_backends)]
    )
