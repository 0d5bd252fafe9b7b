"""Tri-plane features: project points onto the XY, XZ and YZ planes, sample, average, decode.

Points are in head space (``blender_addon/formats/cameras.py``); the box [-box_warp/2, box_warp/2]^3
maps onto the planes' [-1, 1] extent. Outside the box the planes give zeros (zero padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualizedLinear

# Which point coordinates index each plane's (u, v): XY, XZ and YZ. (EG3D's released code projects
# onto ZX for its third plane, which repeats the XZ plane's axes; YZ is the tri-plane its paper means.)
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


def sample_triplanes(planes: torch.Tensor, points: torch.Tensor, box_warp: float) -> torch.Tensor:
    """planes [B, 3, C, H, W], points [B, N, 3] -> features [B, N, C], the mean over the three planes."""
    batch, num_planes, channels, height, width = planes.shape
    if points.shape[0] != batch:
        raise ValueError(f"planes of {batch} avatar(s) cannot be sampled at points of {points.shape[0]}: "
                         "pass one point set per avatar (expand the planes or the points first)")
    coords = points * (2.0 / box_warp)
    grids = torch.stack([coords[..., list(axes)] for axes in PLANE_AXES], dim=1)  # [B, 3, N, 2]
    sampled = F.grid_sample(
        planes.reshape(batch * num_planes, channels, height, width),
        grids.reshape(batch * num_planes, 1, -1, 2).to(planes.dtype),
        mode="bilinear", padding_mode="zeros", align_corners=False,
    )  # [B*3, C, 1, N]
    return sampled.reshape(batch, num_planes, channels, -1).mean(dim=1).permute(0, 2, 1)


class TriplaneDecoder(nn.Module):
    """Small MLP: plane features -> raw density (sigma) + colour features in (-0.001, 1.001).

    The first three feature channels are the point's RGB colour (used for texture baking).
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.hidden = EqualizedLinear(in_channels, hidden, activation="softplus")
        self.out = EqualizedLinear(hidden, 1 + out_channels)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.out(self.hidden(features))
        return {"sigma": x[..., :1], "features": torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001}
