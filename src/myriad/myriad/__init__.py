"""Experiment API: a high-level Python API over a Myriad back end.

from myriad import Experiment
with Experiment() as exp:
    exp.reset(seed=1, object_count=3)
    result = exp.grasp(0.6, 0.0, 0.3)
"""

from myriad.experiment import Experiment, parse_pose
from myriad.recording import GraspResult
from myriad.types import CameraImage, ExperimentError, MotionError, ObjectInfo

__all__ = [
    "CameraImage",
    "Experiment",
    "ExperimentError",
    "GraspResult",
    "MotionError",
    "ObjectInfo",
    "parse_pose",
]
