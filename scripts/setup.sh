#!/usr/bin/env bash
# One-time (and idempotent) setup of the Myriad workspace: .venv with pinned wheels, CMake path fix-up, colcon build.
set -euo pipefail
WS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$WS"
PY="${PYTHON:-python3}"

die() { echo "setup: $*" >&2; exit 1; }

command -v "$PY" >/dev/null || die "no $PY on PATH. Install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv) or set PYTHON=."
ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$ver" = "3.11" ] || die "Python 3.11 is required (the ROS 2 Kilted wheels are cp311); $PY is $ver. Set PYTHON=/path/to/python3.11."
command -v cmake >/dev/null || die "cmake is missing (needed to build myriad_interfaces): apt-get install cmake"
command -v c++ >/dev/null || die "a C++ compiler is missing (needed to build myriad_interfaces): apt-get install g++"

# 1. Virtual environment with the pinned requirements (skipped when requirements.txt is unchanged); with --learn
# (or MYRIAD_LEARN=1) also the learning loop's optional requirements-learn.txt (CPU PyTorch).
files=(requirements.txt)
if [ "${1:-}" = "--learn" ] || [ "${MYRIAD_LEARN:-0}" = "1" ]; then
  files+=(requirements-learn.txt)
fi
reqs=()
for f in "${files[@]}"; do reqs+=(-r "$f"); done
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || die "could not create .venv: apt-get install python3.11-venv"
fi
stamp=.venv/.requirements.sha
want=$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing ${reqs[*]} into .venv (about a minute; PyTorch a few more)"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${reqs[@]}" \
    || die "pip could not install ${reqs[*]} (is PyPI reachable?)"
  echo "$want" > "$stamp"
fi

# 2. The wheels' exported CMake files carry the include paths of the machine they were built on.
.venv/bin/python scripts/fix_cmake_paths.py .venv

# 3. Build the workspace.
source scripts/env.sh
# tf2_msgs is built here only when no ROS 2 install provides it (never shadow a real one).
skip=()
# Another Myriad workspace's stand-in (a shell that sourced its env.sh) is not a ROS 2 install: taking it for one
# removed this workspace's tf2_msgs, and its back ends then failed to import it in a clean shell.
for prefix in ${AMENT_PREFIX_PATH//:/ }; do
  case "$prefix" in "$WS/install"*) continue ;; esac
  if grep -qs "Myriad developers" "$prefix/share/tf2_msgs/package.xml"; then continue; fi
  if [ -f "$prefix/share/ament_index/resource_index/packages/tf2_msgs" ]; then
    skip=(--packages-skip tf2_msgs)
    rm -rf install/tf2_msgs build/tf2_msgs
    break
  fi
done
stale=$([ ${#skip[@]} -eq 0 ] && [ ! -d install/tf2_msgs ] && echo yes || true)  # a stand-in to build (again)
if [ -n "$(find src -newer install/.built -print -quit 2>/dev/null)" ] || [ ! -f install/.built ] || [ -n "$stale" ]; then
  echo "setup: colcon build"
  colcon --log-base log/colcon build --symlink-install --base-paths src "${skip[@]}" \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$WS/.venv/bin/python" \
    >log/build.log 2>&1 \
    || { tail -40 log/build.log; die "colcon build failed; full log in log/build.log"; }
  touch install/.built
fi

# 4. The `myriad` command.
cat > .venv/bin/myriad <<SH
#!/usr/bin/env bash
source "$WS/scripts/env.sh"
exec python -m myriad_frontend.cli "\$@"
SH
chmod +x .venv/bin/myriad
echo "setup: ready. Run: .venv/bin/myriad collect --attempts 20"
