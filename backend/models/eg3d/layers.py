"""Equalized-learning-rate layers shared by every EG3D network (StyleGAN2's weight scaling).

Weights are stored at unit variance and scaled at run time, so Adam's step size is the same for
every layer whatever its fan-in; ``lr_multiplier`` slows a layer down (the mapping network uses 0.01).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EqualizedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0,
                 lr_multiplier: float = 1.0, activation: str = "linear") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return apply_activation(x, self.activation)


class EqualizedConv2d(nn.Module):
    """Plain (unmodulated) conv for the discriminator; ``down`` averages 2x2 before convolving."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation = activation
        self.down = down
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return apply_activation(x, self.activation)


def apply_activation(x: torch.Tensor, activation: str) -> torch.Tensor:
    """'linear', 'lrelu' (slope 0.2, gain sqrt 2 as in StyleGAN2) or 'softplus'."""
    if activation == "linear":
        return x
    if activation == "lrelu":
        return F.leaky_relu(x, 0.2) * math.sqrt(2.0)
    if activation == "softplus":
        return F.softplus(x)
    raise ValueError(f"unknown activation {activation!r}")


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()
