"""myriad_runtime.loading: the one loader of `module:name` / `file.py:name` references, with errors that name
what the reference was for, the reference and why (node classes, controllers, brains)."""

from __future__ import annotations

import pytest

from myriad_runtime.loading import LoadError, load_module, load_object


def test_loads_module_and_file_references(tmp_path):
    assert load_object("json:dumps", "x") is __import__("json").dumps
    (tmp_path / "brain.py").write_text("class Brain:\n    pass\n")
    assert load_object(f"{tmp_path / 'brain.py'}:Brain", "brain").__name__ == "Brain"


def test_errors_name_what_the_reference_and_why(tmp_path):
    (tmp_path / "broken.py").write_text("1 / 0\n")
    (tmp_path / "notes.txt").write_text("")
    cases = {
        "no_colon": "parameter controllers: expected 'file.py:name' or 'package.module:name', got 'no_colon'",
        "json:": "expected 'file.py:name'",
        "no_such_module:X": "parameter controllers: cannot import 'no_such_module': ModuleNotFoundError",
        "json:Nope": "parameter controllers: json has no attribute 'Nope'",
        f"{tmp_path / 'missing.py'}:X": "parameter controllers: file not found",
        f"{tmp_path / 'broken.py'}:X": "broken.py failed to load: ZeroDivisionError",
    }
    for ref, message in cases.items():
        with pytest.raises(LoadError) as info:
            load_object(ref, "parameter controllers")
        assert message in str(info.value), (ref, str(info.value))
    with pytest.raises(LoadError, match="is not a Python file"):
        load_module(tmp_path / "notes.txt", "transfer_functions")


def test_node_class_must_be_a_node():
    pytest.importorskip("rclpy", reason="source scripts/env.sh")
    from myriad_runtime.container import load_class

    assert load_class("myriad_sim.sim_server_node:SimServerNode").__name__ == "SimServerNode"
    with pytest.raises(LoadError, match="node class 'json:dumps' is not an rclpy Node subclass"):
        load_class("json:dumps")
    with pytest.raises(LoadError, match="node class: myriad_sim.sim_server_node has no attribute 'Nope'"):
        load_class("myriad_sim.sim_server_node:Nope")


def test_container_says_what_failed_and_where(node_procs, tmp_path):
    """A node that fails (here at start, on a bad parameter) ends its process with exit code 1 and one line that
    names the error and the line that raised it."""
    pytest.importorskip("rclpy", reason="source scripts/env.sh")
    params = {"sim_server": {"renderer": "bogus"}}
    proc = node_procs(["myriad_sim.sim_server_node:SimServerNode"], "/fatal_test", params, log="fatal.log")
    assert proc.wait(60) == 1
    (line,) = [x for x in (tmp_path / "fatal.log").read_text().splitlines() if "fatal:" in x]
    assert line.startswith(
        "[SimServerNode] fatal: ValueError: parameter renderer: expected auto, egl or tiny"
    ), line
    assert line.endswith(" in __init__)") and "(at sim_server_node.py:" in line, line
