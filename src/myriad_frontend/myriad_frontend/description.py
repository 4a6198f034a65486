"""The back-end description (config/backend.yaml): loading, validation and rendering per back end.

Both Myriad's own launcher and the ROS 2 launch file in launch/ use this module, so they start the same graph."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from myriad_runtime import EXECUTORS

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RECORDER_CLASS = "myriad_storage.recorder_node:RecorderNode"


class DescriptionError(ValueError):
    """The description file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class NodeDesc:
    name: str
    package: str
    executable: str
    cls: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ProcessDesc:
    name: str
    nodes: tuple[NodeDesc, ...]


@dataclass(frozen=True)
class Description:
    path: Path
    namespace: str
    processes: tuple[ProcessDesc, ...]
    remappings: dict[str, str]
    executor: str = EXECUTORS[0]

    def nodes(self) -> list[NodeDesc]:
        return [n for p in self.processes for n in p.nodes]

    def with_recorder(self, output_dir: Path | str) -> Description:
        """This description with a `recorder` node (MCAP of the back end's topics into `output_dir`) in its first
        process."""
        params = {"output_dir": str(Path(output_dir).resolve()), "backend_id": "${backend}"}
        node = NodeDesc("recorder", "myriad_storage", "recorder", RECORDER_CLASS, params)
        first, *rest = self.processes
        return replace(self, processes=(ProcessDesc(first.name, (*first.nodes, node)), *rest))

    def render(self, **values: Any) -> RenderedBackend:
        """Substitute ${...} values into the namespace and parameters of one back end."""
        ns = _subst(self.namespace, values, self.path, "namespace")
        params = {
            f"{ns}/{n.name}": {"ros__parameters": {k: _subst(v, values, self.path, f"nodes.{n.name}.parameters.{k}")
                                                   for k, v in n.parameters.items()}}
            for n in self.nodes()
        }  # fmt: skip
        remaps = {
            src: (dst if dst.startswith("/") else f"{ns}/{dst}") for src, dst in self.remappings.items()
        }
        return RenderedBackend(ns, self.processes, params, remaps, self.executor)


@dataclass(frozen=True)
class RenderedBackend:
    namespace: str
    processes: tuple[ProcessDesc, ...]
    parameters: dict[str, Any]
    remappings: dict[str, str]
    executor: str

    def params_yaml(self) -> str:
        return yaml.safe_dump(self.parameters, sort_keys=True)

    def ros_args(self, params_file: Path) -> list[str]:
        args = ["--ros-args", "-r", f"__ns:={self.namespace}"]
        for src, dst in self.remappings.items():
            args += ["-r", f"{src}:={dst}"]
        return args + ["--params-file", str(params_file)]


def _subst(value: Any, values: dict[str, Any], path: Path, field: str) -> Any:
    if not isinstance(value, str) or "$" not in value:
        return value
    try:
        out = string.Template(value).substitute({k: str(v) for k, v in values.items()})
    except (KeyError, ValueError) as exc:
        raise DescriptionError(
            f"{path}: field '{field}': unknown or malformed substitution {exc} in {value!r}"
        ) from None
    return out


def _fail(path: Path, field: str, expected: str, got: Any) -> None:
    raise DescriptionError(f"{path}: field '{field}': expected {expected}, got {got!r}")


def load_description(path: Path | str, check_packages: bool = True) -> Description:
    """Load and validate a back-end description; with check_packages, every package must be installed."""
    path = Path(path)
    if not path.is_file():
        raise DescriptionError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DescriptionError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        _fail(path, "<top level>", "a mapping with namespace, processes, nodes", data)
    ns = data.get("namespace")
    if not isinstance(ns, str) or not ns.startswith("/"):
        _fail(path, "namespace", "an absolute namespace such as /myriad/b${index}", ns)
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        _fail(path, "nodes", "a mapping of node name to {package, executable, class, parameters}", nodes_raw)
    nodes: dict[str, NodeDesc] = {}
    for name, spec in nodes_raw.items():
        where = f"nodes.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            _fail(path, where, "a node name of letters, digits and underscores", name)
        if not isinstance(spec, dict):
            _fail(path, where, "a mapping", spec)
        for key in ("package", "executable", "class"):
            if not isinstance(spec.get(key), str) or not spec[key]:
                _fail(path, f"{where}.{key}", "a non-empty string", spec.get(key))
        if ":" not in spec["class"]:
            _fail(path, f"{where}.class", "'package.module:Class'", spec["class"])
        params = spec.get("parameters", {}) or {}
        if not isinstance(params, dict):
            _fail(path, f"{where}.parameters", "a mapping", params)
        if check_packages:
            _check_package(path, f"{where}.package", spec["package"])
        nodes[name] = NodeDesc(name, spec["package"], spec["executable"], spec["class"], dict(params))
    procs_raw = data.get("processes")
    if not isinstance(procs_raw, dict) or not procs_raw:
        _fail(path, "processes", "a mapping of process name to a list of node names", procs_raw)
    processes, placed = [], set()
    for pname, members in procs_raw.items():
        if not isinstance(members, list) or not members:
            _fail(path, f"processes.{pname}", "a non-empty list of node names", members)
        for m in members:
            if m not in nodes:
                _fail(
                    path,
                    f"processes.{pname}",
                    f"names of nodes defined under 'nodes' ({', '.join(nodes)})",
                    m,
                )
            if m in placed:
                _fail(path, f"processes.{pname}", "each node in one process only", m)
            placed.add(m)
        processes.append(ProcessDesc(pname, tuple(nodes[m] for m in members)))
    unplaced = sorted(set(nodes) - placed)
    if unplaced:
        _fail(path, "processes", f"every node placed in a process; not placed: {unplaced}", procs_raw)
    remaps = data.get("remappings", {}) or {}
    if not isinstance(remaps, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in remaps.items()
    ):
        _fail(path, "remappings", "a mapping of topic name to topic name", remaps)
    executor = data.get("executor", EXECUTORS[0])
    if executor not in EXECUTORS:
        _fail(path, "executor", f"one of {', '.join(EXECUTORS)}", executor)
    return Description(path, ns, tuple(processes), dict(remaps), executor)


def _check_package(path: Path, field: str, package: str) -> None:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix(package)
    except (PackageNotFoundError, KeyError, ValueError):
        _fail(path, field, "an installed ROS 2 package (did scripts/setup.sh build it?)", package)
