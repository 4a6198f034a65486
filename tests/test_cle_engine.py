"""Closed-Loop Engine without ROS: timestep rules, transfer functions, lockstep control, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pybullet as pb
import pytest

from myriad_cle import (
    ClosedLoopEngine,
    Command,
    EngineError,
    LocalSim,
    TimestepError,
    TransferFunctionError,
    TransferFunctions,
    actuator,
    load_brain,
    load_transfer_functions,
    physics_steps,
    sensor,
)
from myriad_sim.spec import load_world
from myriad_sim.world import World

WS = Path(__file__).resolve().parents[1]
DT = 1 / 240


@pytest.fixture(scope="module")
def world():
    w = World(load_world(WS / "worlds" / "tray.yaml"), renderer="tiny")
    yield w
    w.close()


@sensor
def joints(obs):
    return obs.joint_positions + obs.rng.normal(0.0, 0.05, len(obs.joint_positions))


@actuator
def wiggle(output, obs):
    return Command(arm=output, gripper=0.5)


def noisy_brain(inputs):
    return inputs["joints"] + 0.05


def test_timestep_must_be_a_whole_number_of_physics_steps():
    assert physics_steps(0.025, DT) == 6
    with pytest.raises(
        TimestepError,
        match=r"not an integer multiple of the physics step .*240 Hz.*0\.0208333 s \(5 physics steps\) or 0\.025 s \(6",
    ):
        physics_steps(0.022, DT)
    with pytest.raises(TimestepError, match="nearest valid: 0.00416667 s \\(1 physics step\\)"):
        physics_steps(0.001, DT)
    with pytest.raises(TimestepError, match="positive number"):
        physics_steps(0.0, DT)


def test_default_timestep_is_the_multiple_nearest_20_ms(world):
    engine = ClosedLoopEngine(LocalSim(world), noisy_brain, [joints, wiggle])
    assert engine.physics_steps == 5 and engine.timestep == pytest.approx(5 * DT)
    with pytest.raises(TimestepError, match="timestep"):
        ClosedLoopEngine(LocalSim(world), noisy_brain, [joints, wiggle], timestep=0.02)


def trajectory(world, seed: int) -> np.ndarray:
    engine = ClosedLoopEngine(LocalSim(world, object_count=2), noisy_brain, [joints, wiggle], timestep=0.025)
    engine.reset(seed)
    return engine.run(0.5).joint_positions


def test_same_seed_bit_identical_different_seed_differs(world):
    a, b, c = trajectory(world, 3), trajectory(world, 3), trajectory(world, 4)
    assert a.shape == (20, 7)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_pause_stop_reset(world):
    calls = []

    @actuator
    def pause_at_five(output, obs):
        calls.append(obs.step)
        if obs.step == 4:
            engine.pause()

    engine = ClosedLoopEngine(LocalSim(world), lambda inputs: None, [pause_at_five], timestep=0.025)
    start = world.steps
    engine.run()
    assert engine.state == "paused" and engine.steps == 5 and world.steps - start == 30
    engine.run(0.05)
    assert engine.steps == 7 and engine.state == "paused"
    engine.stop()
    with pytest.raises(EngineError, match="reset"):
        engine.step()
    with pytest.raises(EngineError, match="reset"):
        engine.run(0.1)
    engine.reset(1)
    assert engine.state == "idle" and engine.steps == 0 and len(engine.trace.states) == 0
    rebuilt = world.steps
    engine.step()
    assert calls == [0, 1, 2, 3, 4, 5, 6, 0]
    # The engine's reset rebuilt the world from seed 1, and settled: as many steps as a reset of seed 1 takes.
    world.reset(1, LocalSim(world).object_count)
    assert world.steps == rebuilt >= world.spec.objects.settle_steps


def tool_pose_at(world, q) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of the sim's own robot: tool centre position and rotation matrix at arm joints q."""
    world.robot.reset_joints(q)
    pos, orn = world.robot.tool_pose()
    return pos, np.array(pb.getMatrixFromQuaternion(orn)).reshape(3, 3)


def test_observation_camera_contacts_and_jacobian(world):
    seen = []

    @sensor
    def everything(obs):
        seen.append(
            dict(
                q=obs.joint_positions.copy(), jacobian=obs.jacobian, contacts=obs.contacts, camera=obs.camera
            )
        )

    @actuator
    def press_down(output, obs):  # leans the arm forward until the gripper presses on the tray
        return Command(arm=[0.0, 1.2, 0.0, -1.0, 0.0, 0.6, 0.0])

    engine = ClosedLoopEngine(LocalSim(world), lambda inputs: None, [everything, press_down], timestep=0.025)
    for _ in range(20):
        engine.step()
    engine.close()
    first, last = seen[0], seen[-1]
    spec = world.spec.camera
    rgb, depth = first["camera"].rgb, first["camera"].depth
    assert rgb.shape == (spec.height, spec.width, 3) and first["jacobian"].shape == (6, 7)
    # The camera sees the scene: colours and depths vary (the tray floor, its rim, the table around it).
    assert rgb.reshape(-1, 3).std(axis=0).min() > 10 and float(depth.max() - depth.min()) > 0.05
    assert first["contacts"] == [] and "tray" in last["contacts"], (first["contacts"], last["contacts"])
    # The Jacobian matches finite differences of the sim's forward kinematics, at rest and while pressing.
    for obs in (first, last):
        q, eps = obs["q"], 1e-3
        numeric = np.zeros((6, 7))
        for i in range(7):  # central differences
            p1, r1 = tool_pose_at(world, q + eps * np.eye(7)[i])
            p0, r0 = tool_pose_at(world, q - eps * np.eye(7)[i])
            skew = (r1 @ r0.T - r0 @ r1.T) / 2  # small rotation as a skew matrix
            numeric[:3, i] = (p1 - p0) / (2 * eps)
            numeric[3:, i] = np.array([skew[2, 1], skew[0, 2], skew[1, 0]]) / (2 * eps)
        np.testing.assert_allclose(obs["jacobian"], numeric, atol=1e-3)
    assert np.abs(first["jacobian"]).max() > 0.1
    world.build()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tfs.py"
    path.write_text(text)
    return path


def test_transfer_function_errors(tmp_path, world):
    with pytest.raises(TransferFunctionError, match="transfer_functions: file not found"):
        load_transfer_functions(tmp_path / "missing.py")
    with pytest.raises(TransferFunctionError, match="no @sensor or @actuator"):
        load_transfer_functions(write(tmp_path, "x = 1\n"))
    with pytest.raises(TransferFunctionError, match="failed to load: NameError"):
        load_transfer_functions(write(tmp_path, "undefined_name\n"))
    dup = "from myriad_cle import sensor\n@sensor(name='a')\ndef f(o): pass\n@sensor(name='a')\ndef g(o): pass\n"
    with pytest.raises(TransferFunctionError, match=r"brain input \['a'\]"):
        load_transfer_functions(write(tmp_path, dup))
    tfs = load_transfer_functions(
        write(tmp_path, "from myriad_cle import sensor\n@sensor\ndef q(obs):\n    return 1\n")
    )
    assert [n for n, _ in tfs.sensors] == ["q"] and tfs.actuators == []

    def run_with(*functions, brain=lambda inputs: [0.0] * 7):
        ClosedLoopEngine(LocalSim(world), brain, TransferFunctions.collect(functions), timestep=0.025).step()

    with pytest.raises(TransferFunctionError, match="returned int, expected a Command"):
        run_with(actuator(lambda out, obs: 3, name="bad"))
    with pytest.raises(TransferFunctionError, match="3 targets for the 7 arm joints"):
        run_with(actuator(lambda out, obs: Command(arm=[0, 0, 0]), name="short"))
    with pytest.raises(TransferFunctionError, match="unknown joints"):
        run_with(actuator(lambda out, obs: Command(arm={"J9": 0.0}), name="named"))
    with pytest.raises(TransferFunctionError, match=r"sensor 'boom' \(<code>\) failed: ZeroDivisionError"):
        run_with(sensor(lambda obs: 1 / 0, name="boom"))
    with pytest.raises(TransferFunctionError, match="brain: expected a callable"):
        run_with(sensor(lambda obs: 0, name="x"), brain=42)
    with pytest.raises(TransferFunctionError, match="expected 'file.py:name'"):
        load_brain("no_colon")
    with pytest.raises(TransferFunctionError, match="has no attribute 'Nope'"):
        load_brain(f"{WS / 'examples' / 'closed_loop_reach.py'}:Nope")
    assert callable(load_brain(f"{WS / 'examples' / 'closed_loop_reach.py'}:ProportionalBrain"))


def test_experiment_config_file(tmp_path):
    from myriad_cle.config import CLEConfig, load_config
    from myriad_sim.spec import SpecError

    (tmp_path / "exp.yaml").write_text(
        "brain: brain.py:Brain\ntransfer_functions: tfs.py\ntimestep: 0.025\nseed: 4\n"
    )
    config = load_config(tmp_path / "exp.yaml")
    assert config.brain == f"{tmp_path}/brain.py:Brain" and config.transfer_functions == f"{tmp_path}/tfs.py"
    assert (config.timestep, config.seed, config.duration) == (0.025, 4, 0.0)
    assert config.merged({"seed": 9, "brain": "", "timestep": None}).seed == 9
    (tmp_path / "bad.yaml").write_text("transfer_functions: tfs.py\n")
    with pytest.raises(SpecError, match="field 'brain'"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(SpecError, match="field 'transfer_functions'"):
        CLEConfig(brain="b.py:B").check()
    for duration in (float("nan"), float("inf"), -1.0):
        with pytest.raises(SpecError, match="field 'duration': expected a finite number >= 0"):
            CLEConfig(brain="b.py:B", transfer_functions="t.py", duration=duration).check()
