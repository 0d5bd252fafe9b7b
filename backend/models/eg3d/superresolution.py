"""Super-resolution: the neural rendering (e.g. 128²) to the output size (e.g. 512²).

Each doubling is a StyleGAN2 synthesis block modulated by the last w; its skip-RGB path starts
from the raw rendered RGB, so the output stays close to the 3D-consistent raw image.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .stylegan2 import SynthesisBlock, channels_at


class SuperResolution(nn.Module):
    def __init__(self, feature_channels: int, w_dim: int, input_resolution: int, output_resolution: int,
                 channel_base: int, channel_max: int) -> None:
        super().__init__()
        ratio = output_resolution // input_resolution
        if ratio < 1 or ratio * input_resolution != output_resolution or ratio & (ratio - 1):
            raise ValueError(f"output resolution {output_resolution} must be the neural rendering resolution "
                             f"{input_resolution} times a power of two")
        blocks, in_channels = [], feature_channels
        for step in range(int(math.log2(ratio))):
            resolution = input_resolution * 2 ** (step + 1)
            out_channels = channels_at(resolution, channel_base, channel_max)
            blocks.append(SynthesisBlock(in_channels, out_channels, w_dim, resolution, img_channels=3))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)

    def forward(self, rgb: torch.Tensor, features: torch.Tensor, w_last: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """rgb [B, 3, n, n] and features [B, C, n, n] in [-1, 1], w_last [B, w_dim] -> [B, 3, N, N]."""
        x, img = features, rgb
        for block in self.blocks:
            ws = w_last.unsqueeze(1).repeat(1, block.num_ws, 1)
            x, img = block(x, img, ws, noise_mode)
        return img
