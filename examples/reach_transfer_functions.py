"""Transfer functions of the closed-loop reach (examples/closed_loop_reach.py).

Sensor: the gripper-centre position. Actuator: the brain's Cartesian velocity turned into joint targets by the
damped least-squares inverse of the Jacobian, with zero angular velocity (the gripper keeps its orientation).
"""

import numpy as np

from myriad_cle import Command, actuator, sensor

DAMPING = 0.01


@sensor
def position(obs):
    return obs.ee_position


@actuator
def arm(velocity, obs):
    J = obs.jacobian
    twist = np.concatenate([np.asarray(velocity, float), np.zeros(3)])
    dq = J.T @ np.linalg.solve(J @ J.T + DAMPING**2 * np.eye(6), twist)
    return Command(arm=obs.joint_positions + dq * obs.timestep)
