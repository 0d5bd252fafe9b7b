"""Image encoders behind one interface: images in [-1, 1] -> one embedding per image.

- ``ConvImageEncoder`` (default): a small convolutional network trained together with the prior on
  the generator's own renders, so it needs no outside weights.
- ``ClipImageEncoder``: frozen CLIP vision weights (``CLIPVisionModelWithProjection``) loaded from a
  local folder with ``local_files_only=True``; its ``image_embeds`` are the embedding, as in the paper.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelMissing
from .config import ConvEncoderConfig, EncoderConfig

# OpenAI CLIP's pixel statistics, used when the folder has no preprocessor_config.json.
CLIP_DEFAULT_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_DEFAULT_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageEncoder(nn.Module):
    """Interface: ``forward(images [B, 3, H, W] in [-1, 1]) -> [B, embedding_dim]``.

    ``image_size`` is the square input size the encoder wants; callers resize to it.
    ``trainable`` says whether the prior's training updates its weights.
    """

    embedding_dim: int
    image_size: int
    trainable: bool


class ConvImageEncoder(ImageEncoder):
    trainable = True

    def __init__(self, config: ConvEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding_dim = config.embedding_dim
        self.image_size = config.image_size
        blocks: list[nn.Module] = [nn.Conv2d(3, config.base_channels, 3, padding=1), nn.SiLU()]
        channels, size = config.base_channels, config.image_size
        while size > 4:
            out_channels = min(channels * 2, config.max_channels)
            blocks += [nn.Conv2d(channels, out_channels, 3, stride=2, padding=1), nn.GroupNorm(_groups(out_channels), out_channels), nn.SiLU()]
            channels, size = out_channels, size // 2
        self.features = nn.Sequential(*blocks)
        self.project = nn.Linear(channels * 4 * 4, config.embedding_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = _resize(images, self.image_size)
        return self.project(self.features(images).flatten(1))


class ClipImageEncoder(ImageEncoder):
    trainable = False

    def __init__(self, folder: Path) -> None:
        super().__init__()
        from transformers import CLIPVisionModelWithProjection

        if not (folder / "config.json").is_file():
            raise ModelMissing(f"no CLIP vision model in {folder} (config.json is missing)",
                               "point encoder.clip_model at a folder saved by CLIPVisionModelWithProjection.save_pretrained")
        self.model = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True)
        self.model.requires_grad_(False).eval()
        self.embedding_dim = int(self.model.config.projection_dim)
        self.image_size = int(self.model.config.image_size)
        mean, std = _clip_pixel_statistics(folder)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "ClipImageEncoder":
        """CLIP stays frozen in eval mode even while the prior trains."""
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = (_resize(images, self.image_size) + 1.0) / 2.0
        pixels = (pixels - self.pixel_mean) / self.pixel_std
        dtype = next(self.model.parameters()).dtype
        return self.model(pixel_values=pixels.to(dtype)).image_embeds.float()


def build_encoder(config: EncoderConfig, resolve: Callable[[str], Path] = Path) -> ImageEncoder:
    """The encoder named by ``config.kind``; ``resolve`` turns ``clip_model`` into a local folder."""
    if config.kind == "clip":
        return ClipImageEncoder(Path(resolve(config.clip_model)))
    return ConvImageEncoder(config.conv)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=images.shape[-1] > size)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


def _clip_pixel_statistics(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return CLIP_DEFAULT_MEAN, CLIP_DEFAULT_STD
    document = json.loads(path.read_text(encoding="utf-8"))
    return tuple(document.get("image_mean", CLIP_DEFAULT_MEAN)), tuple(document.get("image_std", CLIP_DEFAULT_STD))
