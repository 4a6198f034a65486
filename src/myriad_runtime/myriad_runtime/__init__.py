"""Process plumbing shared by every Myriad node: run one or several nodes in one executor with clean init/spin/shutdown (the rclcpp_components role)."""

import functools
import os
import subprocess
from pathlib import Path

# A node process's executor (myriad_runtime.container --executor): myriad_runtime.executor.LeanExecutor, or rclpy's
# SingleThreadedExecutor.
EXECUTORS = ("lean", "rclpy")


def workspace() -> Path:
    """The Myriad workspace: $MYRIAD_WS (set by scripts/env.sh), else the current directory."""
    return Path(os.environ.get("MYRIAD_WS", os.getcwd()))


def workspace_path(value: str | Path) -> Path:
    """`value` as is when absolute, else relative to the workspace."""
    path = Path(value)
    return path if path.is_absolute() else workspace() / path


@functools.cache
def code_version() -> str:
    """The workspace's git commit (with '+dirty' for uncommitted changes), or MYRIAD_CODE_VERSION, or 'unknown'."""
    if os.environ.get("MYRIAD_CODE_VERSION"):
        return os.environ["MYRIAD_CODE_VERSION"]
    ws = str(workspace())
    try:
        rev = subprocess.run(
            ["git", "-C", ws, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", ws, "status", "--porcelain", "-uno"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
