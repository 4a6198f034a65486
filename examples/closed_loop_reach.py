"""Closed-loop reach: a proportional brain drives the gripper centre to a target through transfer functions.

source scripts/env.sh && python examples/closed_loop_reach.py --target 0.55 0.1 0.35
"""

import argparse
from pathlib import Path

import numpy as np

TRANSFER_FUNCTIONS = Path(__file__).with_name("reach_transfer_functions.py")


class ProportionalBrain:
    """Velocity = gain x (target - position), at most max_speed m/s."""

    def __init__(self, target=(0.55, 0.1, 0.35), gain: float = 8.0, max_speed: float = 0.5):
        self.target, self.gain, self.max_speed = np.asarray(target, float), gain, max_speed

    def __call__(self, inputs: dict) -> np.ndarray:
        v = self.gain * (self.target - inputs["position"])
        speed = np.linalg.norm(v)
        return v if speed <= self.max_speed else v * self.max_speed / speed


def main() -> None:
    from myriad import Experiment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, nargs=3, default=(0.55, 0.1, 0.35), metavar=("X", "Y", "Z"))
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of sim time")
    parser.add_argument("--namespace", help="attach to a running back end (default: a local world)")
    args = parser.parse_args()
    with Experiment(namespace=args.namespace) as exp:
        trace = exp.run(ProportionalBrain(args.target), TRANSFER_FUNCTIONS, args.duration)
    for t, p in list(zip(trace.times, trace.ee_positions))[:: max(1, len(trace.times) // 10)]:
        print(
            f"t={t:5.2f} s  gripper at {np.round(p, 4)}  error {np.linalg.norm(p - args.target) * 1000:6.1f} mm"
        )
    print(f"final error {np.linalg.norm(trace.ee_positions[-1] - args.target) * 1000:.1f} mm")


if __name__ == "__main__":
    main()
