"""The back-end description shared by the front end and the launch file."""

from __future__ import annotations

import pytest
from conftest import WS

from myriad_frontend.description import DescriptionError, load_description

DESC = WS / "config" / "backend.yaml"


def test_description_renders_namespaced_backend():
    d = load_description(DESC)
    r = d.render(
        ws=WS,
        index=3,
        backend="b3",
        mongo_uri="mongodb://127.0.0.1:1/",
        database="db",
        campaign="c",
        run_dir="/tmp/x",
    )
    assert r.namespace == "/myriad/b3"
    assert r.parameters["/myriad/b3/logger"]["ros__parameters"]["campaign"] == "c"
    assert {p.name for p in d.processes} == {"sim", "worker"}
    assert r.remappings == {"/clock": "/myriad/b3/clock"}
    assert "--params-file" in r.ros_args(WS / "p.yaml")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("  sim_server:\n    package", "  sim-server:\n    package"), "nodes.sim-server"),
        (
            lambda t: t.replace("package: myriad_planning", "package: myriad_no_such_pkg"),
            "myriad_no_such_pkg",
        ),
        (lambda t: t.replace("worker: [planner,", "worker: [plannr,"), "processes.worker"),
        (lambda t: t + "\nnodes: [\n", "malformed YAML"),
        (lambda t: t.replace("${campaign}", "${campain}"), "campain"),
    ],
)
def test_bad_description_names_the_problem(tmp_path, edit, message):
    bad = tmp_path / "backend.yaml"
    bad.write_text(edit(DESC.read_text()))
    with pytest.raises(DescriptionError, match=message.replace("$", r"\$")) as err:
        load_description(bad).render(
            ws=WS, index=0, backend="b0", mongo_uri="m", database="d", campaign="c", run_dir="/r"
        )
    assert str(bad) in str(err.value)
