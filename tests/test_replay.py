"""Replay: an attempt depends on its seed and parameters only, not on what the back end ran before it."""

from __future__ import annotations

from pathlib import Path

import pytest

from myriad.local import LocalBackend, LocalGraspBackend
from myriad_grasping.episode import run_attempt
from myriad_grasping.sampling import GraspParams
from myriad_sim.spec import load_world
from myriad_storage.codec import depth_to_png, encode_png, seg_to_png

WS = Path(__file__).resolve().parents[1]


def attempts(seeds: list[int], params: list[GraspParams], renderer: str) -> list[tuple]:
    """Run the attempts in order in one fresh in-process back end; what each stores, images as PNG bytes."""
    local = LocalBackend(load_world(WS / "worlds" / "tray.yaml"), renderer)
    backend, region = LocalGraspBackend(local), local.spec.objects
    out = []
    try:
        for seed, p in zip(seeds, params):
            a = run_attempt(backend, p, seed, region.region_x, region.region_y)
            pre, post = a.pre_images, a.post_images
            images = (encode_png(pre.rgb), depth_to_png(pre.depth), seg_to_png(pre.segmentation),
                      encode_png(post.rgb))  # fmt: skip
            moves = {k: {f: v for f, v in m.items() if f != "planning_time"} for k, m in a.moves.items()}
            out.append((a.objects, a.grasp, a.target, a.outcome, a.success, a.lift_height, moves, images))
    finally:
        local.close()
    return out


@pytest.mark.parametrize("renderer", ["tiny", "egl"])
def test_an_attempt_replays_bit_identically_whatever_ran_before(renderer):
    """Seed 21 alone, then after two other attempts (more objects, another strategy): the same objects and poses,
    grasp, motions, label and image bytes. With EGL (the back ends' renderer) seed 21's captures alone are the
    process's first two frames."""
    p = GraspParams(object_count=4, strategy="uniform")
    alone = attempts([21], [p], renderer)[0]
    other = GraspParams(object_count=6, strategy="object")
    after = attempts([7, 8, 21], [other, other, p], renderer)
    assert after[2] == alone
    assert after[0][0] != alone[0]  # the attempts before were different ones
