#!/usr/bin/env bash
# Every Myriad container runs its command in the workspace environment (venv, built packages, ROS settings),
# not in the base image's /opt/ros one.
set -e
source /ws/scripts/env.sh
exec "$@"
