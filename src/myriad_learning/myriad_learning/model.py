"""The grasp-success network for training (PyTorch, CPU): a small CNN over the grasp's RGB-D crop plus its
parameters -> P(success), after Levine et al. Its weights are deployed as myriad_learning.inference.GraspModel
(numpy), which the back ends run without PyTorch.
"""

from __future__ import annotations

from typing import Any

from myriad_learning import require_torch
from myriad_learning.features import CHANNELS, CROP, VECTOR
from myriad_learning.inference import GraspModel

torch = require_torch()
nn = torch.nn
F = torch.nn.functional


def deterministic(seed: int) -> None:
    """One CPU thread, deterministic kernels, the seed of torch's generator."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)


class GraspNet(nn.Module):
    """Three conv blocks (3x3 convolution, ReLU, 2x2 max pooling) over the crop (CHANNELS x CROP x CROP ->
    2*width x CROP/8 x CROP/8), joined with the grasp vector, two fully connected layers to one logit. The layer
    names are the stored arrays' (inference.LAYERS)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.conv0 = nn.Conv2d(CHANNELS, width, 3, padding=1)
        self.conv1 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.fc0 = nn.Linear(2 * width * (CROP // 8) ** 2 + VECTOR, 64)
        self.fc1 = nn.Linear(64, 1)

    def forward(self, images: Any, vectors: Any) -> Any:
        x = images
        for conv in (self.conv0, self.conv1, self.conv2):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.fc1(F.relu(self.fc0(torch.cat([x.flatten(1), vectors], 1)))).squeeze(1)

    def deployed(self) -> GraspModel:
        """The trained weights as the numpy model the back ends run."""
        return GraspModel({k: v.detach().numpy().copy() for k, v in self.state_dict().items()})
