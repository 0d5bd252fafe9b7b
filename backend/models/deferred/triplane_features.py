"""Learnable surface features: three axis-aligned planes looked up at each pixel's canonical position.

Unlike EG3D's tri-plane (features summed), DiffusionAvatars concatenates the xy, xz and yz lookups,
so a pixel gets ``3 * channels`` features. Canonical positions lie in head space [-0.5, 0.5]^3.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .channels import TRIPLANE_PLANES

_PLANE_AXES = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}


class TriplaneFeatures(nn.Module):
    def __init__(self, channels: int, resolution: int) -> None:
        super().__init__()
        self.channels = channels
        self.resolution = resolution
        self.planes = nn.Parameter(torch.randn(len(TRIPLANE_PLANES), channels, resolution, resolution))

    def forward(self, canonical: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """canonical (B, H, W, 3) in head space, mask (B, H, W) -> features (B, 3 * channels, H, W),
        bilinearly interpolated, zero outside the mask."""
        batch = canonical.shape[0]
        grid_coordinates = (canonical * 2.0).clamp(-1.0, 1.0)
        lookups = []
        for index, plane in enumerate(TRIPLANE_PLANES):
            first, second = _PLANE_AXES[plane]
            grid = torch.stack([grid_coordinates[..., first], grid_coordinates[..., second]], dim=-1)
            plane_batch = self.planes[index].unsqueeze(0).expand(batch, -1, -1, -1).to(grid.dtype)
            lookups.append(F.grid_sample(plane_batch, grid, mode="bilinear", padding_mode="border", align_corners=False))
        features = torch.cat(lookups, dim=1)
        return features * (mask.unsqueeze(1) > 0.5).to(features.dtype)
