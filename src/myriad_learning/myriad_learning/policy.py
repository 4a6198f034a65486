"""The `learned` grasp strategy: candidate grasps scored by a stored model, refined by the cross-entropy method
(CEM, as Levine et al.), the best executed. Heights follow the grasp-height rule; every random draw comes from
the attempt's generator and inference is deterministic, so the same model and seed give the same grasp."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from myriad_grasping.sampling import MIN_SEEN_POINTS, Grasp, GraspParams, aim_at, grasp_height, wrap_yaw
from myriad_learning.features import grasp_features
from myriad_sim.frames import camera_record

POPULATION = 64  # candidates scored per CEM iteration
ITERATIONS = 3  # refinements after the initial population
ELITES = 8  # best candidates a refinement's Gaussian is fitted to
# Share of the initial population drawn around the seen objects' aims; the rest is uniform in the tray.
OBJECT_SHARE = 0.75
AIM_NOISE = (0.02, 0.02, 0.5)  # m, m, rad: spread of the initial candidates around an aim
MIN_STD = (0.003, 0.003, 0.05)  # floor of a refinement's spread


def learned_grasp(
    rng: np.random.Generator,
    params: GraspParams,
    objects: list[str],
    region_x: tuple[float, float],
    region_y: tuple[float, float],
    view: Any,
    model: Any,
) -> tuple[Grasp, str]:
    """The best-scoring grasp found by CEM, and the object whose aim its search started from ("" uniform).
    `view` is a DepthView with the capture's `rgb`."""
    camera = camera_record(view.camera)
    lo, hi = np.array([region_x[0], region_y[0]]), np.array([region_x[1], region_y[1]])
    aims = [
        (n, aim_at(view, params, pts))
        for n in objects
        if len(pts := view.object_points(n)) >= MIN_SEEN_POINTS
    ]
    n_obj = round(POPULATION * OBJECT_SHARE) if aims else 0
    # Each aim itself (what the `object` strategy would try), then draws around randomly chosen aims.
    extra = rng.integers(len(aims), size=n_obj - len(aims)) if aims else np.zeros(0, int)
    which = np.concatenate([np.arange(len(aims)), extra]).astype(int)
    centres = np.array([(aims[k][1].x, aims[k][1].y, aims[k][1].yaw) for k in which]).reshape(-1, 3)
    around = centres + rng.normal(0.0, 1.0, (n_obj, 3)) * AIM_NOISE * (np.arange(n_obj) >= len(aims))[:, None]
    uniform = np.column_stack([rng.uniform(lo, hi, (POPULATION - n_obj, 2)),
                               rng.uniform(-math.pi / 2, math.pi / 2, POPULATION - n_obj)])  # fmt: skip
    cand = np.vstack([around, uniform])
    origin = [aims[k][0] for k in which] + [""] * (POPULATION - n_obj)

    def score(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c[:, :2] = np.clip(c[:, :2], lo, hi)
        c[:, 2] = wrap_yaw(c[:, 2])
        z = np.array([grasp_height(params, view.surface_height(x, y)) for x, y in c[:, :2]])
        grasps = np.column_stack([c, z])[:, [0, 1, 3, 2]]  # x, y, z, yaw
        return grasps, model.scores(*grasp_features(view.rgb, view.depth, camera, grasps))

    grasps, scores = score(cand)
    for _ in range(ITERATIONS):
        elite = grasps[np.argsort(-scores, kind="stable")[:ELITES]]
        best_yaw = elite[0, 3]
        yaw = best_yaw + wrap_yaw(elite[:, 3] - best_yaw)  # the elites' yaws unwrapped around the best one
        mean = np.array([elite[:, 0].mean(), elite[:, 1].mean(), yaw.mean()])
        std = np.maximum(np.array([elite[:, 0].std(), elite[:, 1].std(), yaw.std()]), MIN_STD)
        new, new_scores = score(mean + rng.normal(0.0, 1.0, (POPULATION, 3)) * std)
        grasps, scores = np.vstack([grasps, new]), np.concatenate([scores, new_scores])
        origin += [""] * POPULATION
    k = int(np.argmax(scores))
    x, y, z, yaw = (float(v) for v in grasps[k])
    return Grasp(x, y, z, yaw), origin[k]
