"""StyleGAN2 synthesis in plain PyTorch: modulated convolutions, blocks with skip-RGB outputs.

Up-sampling is bilinear interpolation before the convolution (StyleGAN2's FIR filter needs a custom
op; bilinear is the same low-pass idea with torch's own kernel). The backbone's "RGB" output has
``3 * plane_channels`` channels and becomes the three feature planes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualizedLinear, apply_activation

NOISE_MODES = ("random", "const", "none")


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool) -> torch.Tensor:
    """StyleGAN2's modulated convolution, computed as scale-inputs -> shared conv -> scale-outputs.

    Equal to convolving each sample with weight * style (normalised to unit output variance when
    ``demodulate``), without building per-sample weights: one ordinary batched conv, which is
    faster than a grouped conv on CPU and on GPU alike for these sizes.
    """
    x = x * styles.to(x.dtype).reshape(styles.shape[0], -1, 1, 1)
    x = F.conv2d(x, weight.to(x.dtype), padding=weight.shape[-1] // 2)
    if demodulate:
        coefficients = (weight.unsqueeze(0) * styles.reshape(styles.shape[0], 1, -1, 1, 1)).square().sum(dim=[2, 3, 4])
        x = x * (coefficients + 1e-8).rsqrt().to(x.dtype).reshape(x.shape[0], -1, 1, 1)
    return x


CUDA_NHWC_UPSAMPLE_LIMIT = 2 ** 31 - 1
"""CUDA's channels-last bilinear upsampling refuses outputs of INT_MAX elements or more (e.g. 32 images of
256 channels at 512², the super-resolution of a batch of 32, whose input arrives channels-last)."""


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    if x.is_cuda and x.numel() * 4 >= CUDA_NHWC_UPSAMPLE_LIMIT:
        x = x.contiguous()  # the NCHW kernel has no such limit
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + lrelu, optionally doubling the resolution first."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.weight_gain = 1.0 / math.sqrt(in_channels * 9)
        self.up = up

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        if self.up:
            x = upsample2x(x)
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=True)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        return apply_activation(x + self.bias.to(x.dtype).reshape(1, -1, 1, 1), "lrelu")


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation: a block's contribution to the skip output."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return modulated_conv2d(x, self.weight, styles, demodulate=False) + self.bias.to(x.dtype).reshape(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
    """One resolution of the generator: (up) conv, conv, to-RGB added onto the up-sampled skip image.

    The first block (``in_channels == 0``) starts from a learned constant. ``num_ws`` styles are
    consumed: one per conv plus one for to-RGB (which shares its index with the next block's first conv).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int, up: bool = True) -> None:
        super().__init__()
        self.resolution = resolution
        self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution)) if in_channels == 0 else None
        self.conv0 = None if in_channels == 0 else SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=up)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, up=False)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)
        self.num_conv = 1 if self.conv0 is None else 2
        self.num_ws = self.num_conv + 1
        self.up = up

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        if self.const is not None:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        else:
            x = self.conv0(x, next(w_iter), noise_mode)
        x = self.conv1(x, next(w_iter), noise_mode)
        rgb = self.torgb(x, next(w_iter))
        if img is not None:
            img = upsample2x(img) if self.up else img
            rgb = rgb + img.to(rgb.dtype)
        return x, rgb


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, img_channels, resolution, resolution], blocks from 4x4 up."""

    def __init__(self, w_dim: int, resolution: int, img_channels: int, channel_base: int, channel_max: int) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"synthesis resolution must be a power of two >= 4, got {resolution}")
        self.resolution = resolution
        self.block_resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        blocks = []
        for res in self.block_resolutions:
            in_channels = 0 if res == 4 else channels_at(res // 2, channel_base, channel_max)
            blocks.append(SynthesisBlock(in_channels, channels_at(res, channel_base, channel_max), w_dim, res, img_channels))
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = img = None
        w_index = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, w_index:w_index + block.num_ws], noise_mode)
            w_index += block.num_conv
        return img
