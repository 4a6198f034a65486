"""Random grasp collection through the Experiment API: a seeded tray, a grasp near a random object, stored."""

import argparse

import numpy as np

from myriad import Experiment

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--attempts", type=int, default=10)
parser.add_argument("--namespace", help="attach to a running back end (default: a local world)")
parser.add_argument("--database-uri", help="default: $MYRIAD_MONGO_URI, else a local database in data/")
args = parser.parse_args()

with Experiment(namespace=args.namespace, database_uri=args.database_uri, campaign="collect_grasps") as exp:
    for seed in range(args.attempts):
        rng = np.random.default_rng(seed)
        objects = exp.reset(seed, object_count=3)
        x, y, _ = objects[rng.integers(len(objects))].position
        result = exp.grasp(
            x + rng.normal(0, 0.01), y + rng.normal(0, 0.01), rng.uniform(-np.pi / 2, np.pi / 2)
        )
        key = exp.record(result)
        print(f"seed {seed}: {'success' if result.success else 'failure'} ({result.outcome}) -> {key}")
