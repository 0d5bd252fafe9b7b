"""DiffusionAvatars' ambient feature map: one learnable 2-D map looked up at each pixel's ambient coordinates.

The tri-planes give features by canonical position; the ambient coordinates (a neural head's extra
canonical dimensions, which separate e.g. open from closed lips at the same canonical position) index a
separate ``channels`` x ``resolution``^2 map, so expression-dependent appearance has its own features.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class AmbientFeatures(nn.Module):
    def __init__(self, channels: int, resolution: int, ambient_range: float) -> None:
        super().__init__()
        self.ambient_range = ambient_range
        self.map = nn.Parameter(torch.randn(1, channels, resolution, resolution))

    def forward(self, ambient: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ambient (B, H, W, 2), mask (B, H, W) -> features (B, channels, H, W), bilinear, zero outside the mask."""
        grid = (ambient[..., :2] / self.ambient_range).clamp(-1.0, 1.0)
        features = F.grid_sample(self.map.expand(ambient.shape[0], -1, -1, -1).to(grid.dtype), grid, mode="bilinear",
                                 padding_mode="border", align_corners=False)
        return features * (mask.unsqueeze(1) > 0.5).to(features.dtype)
