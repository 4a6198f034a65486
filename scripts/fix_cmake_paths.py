"""Rewrite the build-machine paths baked into the ROS 2 wheels' CMake files to this venv's (idempotent)."""

import sys
import sysconfig
from pathlib import Path

import numpy

BAKED = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}


def main(venv: str) -> int:
    changed = 0
    for path in Path(venv, "share").rglob("*.cmake"):
        text = path.read_text()
        new = text
        for old, repl in BAKED.items():
            new = new.replace(old, repl)
        if new != text:
            path.write_text(new)
            changed += 1
    if changed:
        print(f"setup: rewrote baked include paths in {changed} CMake files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
