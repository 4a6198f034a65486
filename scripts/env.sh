# Source me: the environment every Myriad process runs in (venv, built workspace, ROS 2 settings).
WS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV="$WS/.venv"
export PATH="$WS/.venv/bin:$PATH"
export AMENT_PREFIX_PATH="$WS/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$WS/config/fastdds.xml}"  # see the file
export ROS_LOG_DIR="${ROS_LOG_DIR:-$WS/log/ros}"
export ROS_HOME="${ROS_HOME:-$WS/log/ros_home}"
export RCUTILS_COLORIZED_OUTPUT=0
export MYRIAD_WS="$WS"
mkdir -p "$WS/log"
if [ -f "$WS/install/local_setup.bash" ]; then
  # colcon's script reads unset variables; relax nounset while it runs.
  _myriad_u=$(set +o | grep nounset); set +u
  COLCON_CURRENT_PREFIX="$WS/install" source "$WS/install/local_setup.bash"
  eval "$_myriad_u"; unset _myriad_u
fi
