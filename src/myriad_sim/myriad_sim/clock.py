"""A back end's clock: sim time that runs on across resets (ROS stamps, /clock), and each episode's own time.

The sim server stamps everything with World.clock_time, so a stamp never goes back: RViz on wall time follows each
attempt, and RViz on the back end's clock does not reset at every attempt. What is stored with an attempt uses
the episode's time (World.sim_time, 0 at the reset), so the same seed gives the same record on any back end.
"""

from __future__ import annotations

from builtin_interfaces.msg import Time


def time_msg(seconds: float) -> Time:
    """`seconds` as a builtin_interfaces/Time (rounded to the nanosecond)."""
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def nanoseconds(t: Time) -> int:
    return t.sec * 1_000_000_000 + t.nanosec


def episode_time(stamp: Time, start: Time, timestep: float) -> float:
    """The episode's sim time at `stamp`, given the episode's `start` (ResetWorld's episode_start; both on the
    back end's clock): whole physics steps since the start, as World.sim_time counts them."""
    return round((nanoseconds(stamp) - nanoseconds(start)) / (timestep * 1e9)) * timestep
