"""Dual discriminator: ResNet StyleGAN2 discriminator on 6 channels (the super-resolved image and
the raw neural rendering up-sampled to the same size), conditioned on a pose label by projection."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualizedConv2d, EqualizedLinear, normalize_2nd_moment
from .stylegan2 import channels_at


@dataclass
class DiscriminatorConfig:
    resolution: int = 512
    label_dim: int = 34
    channel_base: int = 32768
    channel_max: int = 512
    cmap_dim: int = 512
    mapping_layers: int = 8
    """Layers after the label embedding, as StyleGAN2/EG3D's conditioning mapping network has them."""
    mapping_lr_multiplier: float = 0.01
    mbstd_group_size: int = 4


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs (the second halves the resolution) with a scaled 1x1 residual path."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, activation="lrelu", down=True)
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) / math.sqrt(2.0)


def minibatch_stddev(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Append the mean standard deviation over groups of samples as one extra feature map."""
    batch, channels, height, width = x.shape
    group = min(group_size, batch)
    while batch % group:
        group -= 1
    y = x.reshape(group, -1, channels, height, width)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[1, 2, 3])
    y = y.reshape(-1, 1, 1, 1).repeat(group, 1, height, width)
    return torch.cat([x, y], dim=1)


class LabelMapping(nn.Module):
    """The pose label -> the projection vector ``cmap``: embedded first, the embedding normalized, then
    ``mapping_layers`` slow (lr 0.01) layers, as EG3D conditions its discriminator. Normalizing the raw
    label instead would let its largest entries (the camera position) drown the rest."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.embed = EqualizedLinear(config.label_dim, config.cmap_dim)
        self.layers = nn.Sequential(*(
            EqualizedLinear(config.cmap_dim, config.cmap_dim, activation="lrelu", lr_multiplier=config.mapping_lr_multiplier)
            for _ in range(config.mapping_layers)))

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        return self.layers(normalize_2nd_moment(self.embed(label)))


class DualDiscriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        resolutions = [2 ** i for i in range(int(math.log2(config.resolution)), 2, -1)]
        ch = lambda res: channels_at(res, config.channel_base, config.channel_max)  # noqa: E731
        self.from_rgb = EqualizedConv2d(6, ch(config.resolution), 1, activation="lrelu")
        self.blocks = nn.ModuleList(DiscriminatorBlock(ch(res), ch(res // 2)) for res in resolutions)
        channels = ch(4)
        self.epilogue_conv = EqualizedConv2d(channels + 1, channels, 3, activation="lrelu")
        self.epilogue_fc = EqualizedLinear(channels * 16, channels, activation="lrelu")
        out_dim = config.cmap_dim if config.label_dim > 0 else 1
        self.out = EqualizedLinear(channels, out_dim)
        self.label_mapping = LabelMapping(config) if config.label_dim > 0 else None

    def forward(self, image: torch.Tensor, image_raw: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """image [B, 3, R, R], image_raw [B, 3, r, r] (both in [-1, 1]), label [B, label_dim] -> logits [B, 1]."""
        raw_up = F.interpolate(image_raw, size=image.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        x = self.from_rgb(torch.cat([image, raw_up], dim=1))
        for block in self.blocks:
            x = block(x)
        x = self.epilogue_conv(minibatch_stddev(x, self.config.mbstd_group_size))
        x = self.out(self.epilogue_fc(x.flatten(1)))
        if self.label_mapping is None:
            return x
        cmap = self.label_mapping(label.float())
        return (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.config.cmap_dim)
