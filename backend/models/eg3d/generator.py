"""TriplaneGenerator: z -> w -> tri-planes -> volume rendering -> super-resolution (EG3D).

Stable interface (other features build on it):

* ``TriplaneGenerator(config)``; ``config.z_dim``, ``config.w_dim``, ``G.num_ws``
* ``G.mapping(z, c=None, truncation_psi=1.0) -> ws [B, num_ws, w_dim]``
* ``G.synthesis(ws, c) -> {"image": [B, 3, H, W] in [-1, 1], "image_raw": [B, 3, n, n],
  "image_depth": [B, 1, n, n]}`` where ``c`` is the rendering camera's 25-number label
* ``G(z, c)``: both; ``save_generator(dir, G)`` / ``load_generator(dir)``
* ``G.planes(ws)`` and ``G.query(planes, points)`` expose the radiance field (mesh export).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backend.formats.checkpoint import load_weights, read_checkpoint_config, save_checkpoint
from blender_addon.formats.cameras import LABEL_LENGTH

from .mapping import MappingNetwork
from .stylegan2 import SynthesisNetwork
from .superresolution import SuperResolution
from .triplane import TriplaneDecoder, sample_triplanes
from .volume_renderer import RenderSettings, rays_from_labels, render_rays

CHECKPOINT_KIND = "eg3d-generator"


@dataclass
class GeneratorConfig:
    """Every size of the generator. Defaults are EG3D's FFHQ-512 network (neural rendering 128)."""

    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 2
    pose_conditioning: bool = False
    """Feed the camera to the mapping network (EG3D's GPC); off for randomly posed avatar data."""
    plane_resolution: int = 256
    plane_channels: int = 32
    channel_base: int = 32768
    channel_max: int = 512
    decoder_hidden: int = 64
    decoder_channels: int = 32
    neural_rendering_resolution: int = 128
    output_resolution: int = 512
    sr_channel_base: int = 65536
    sr_channel_max: int = 256
    stratified_samples: int = 48
    importance_samples: int = 48
    box_warp: float = 1.0
    white_background: bool = False

    def __post_init__(self) -> None:
        if self.decoder_channels < 3:
            raise ValueError("decoder_channels must be >= 3 (the first three are RGB)")

    @property
    def render_settings(self) -> RenderSettings:
        return RenderSettings(self.stratified_samples, self.importance_samples, self.box_warp, self.white_background)


def tiny_generator_config(**overrides: Any) -> GeneratorConfig:
    """A generator small enough for tests on CPU (planes 16², rendering 16², output 32²)."""
    tiny = GeneratorConfig(
        z_dim=32, w_dim=32, mapping_layers=2, plane_resolution=16, plane_channels=8, channel_base=512,
        channel_max=32, decoder_hidden=16, decoder_channels=8, neural_rendering_resolution=16,
        output_resolution=32, sr_channel_base=512, sr_channel_max=16, stratified_samples=12, importance_samples=12,
    )
    return replace(tiny, **overrides)


class TriplaneGenerator(nn.Module):
    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim, self.w_dim = config.z_dim, config.w_dim
        self.backbone = SynthesisNetwork(config.w_dim, config.plane_resolution, 3 * config.plane_channels,
                                         config.channel_base, config.channel_max)
        self.num_ws = self.backbone.num_ws
        self.mapping_network = MappingNetwork(config.z_dim, LABEL_LENGTH if config.pose_conditioning else 0,
                                              config.w_dim, self.num_ws, config.mapping_layers)
        self.decoder = TriplaneDecoder(config.plane_channels, config.decoder_hidden, config.decoder_channels)
        self.superresolution = SuperResolution(config.decoder_channels, config.w_dim, config.neural_rendering_resolution,
                                               config.output_resolution, config.sr_channel_base, config.sr_channel_max)

    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = False) -> torch.Tensor:
        """z [B, z_dim] -> ws [B, num_ws, w_dim]; ``c`` is only used with pose conditioning."""
        return self.mapping_network(z, c if self.config.pose_conditioning else None, truncation_psi,
                                    truncation_cutoff, update_w_avg)

    def mix_styles(self, ws: torch.Tensor, other_ws: torch.Tensor, probability: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Style mixing: with ``probability`` per sample, ws from a random cut-off on come from ``other_ws``."""
        batch = ws.shape[0]
        cutoffs = torch.randint(1, self.num_ws, (batch,), generator=generator).to(ws.device)
        mixed = torch.rand(batch, generator=generator).to(ws.device) < probability
        cutoffs = torch.where(mixed, cutoffs, torch.full_like(cutoffs, self.num_ws))
        take_other = torch.arange(self.num_ws, device=ws.device)[None, :] >= cutoffs[:, None]
        return torch.where(take_other.unsqueeze(-1), other_ws, ws)

    def planes(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """The tri-planes [B, 3, plane_channels, P, P] of these styles."""
        image = self.backbone(ws, noise_mode=noise_mode)
        return image.reshape(image.shape[0], 3, self.config.plane_channels, image.shape[-2], image.shape[-1])

    def query(self, planes: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """Radiance field at head-space points [B, N, 3]: raw sigma [B, N, 1], features [B, N, C] (RGB first)."""
        return self.decoder(sample_triplanes(planes, points, self.config.box_warp))

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, neural_rendering_resolution: int | None = None,
                  noise_mode: str = "const", jitter: bool | None = None) -> dict[str, torch.Tensor]:
        """Render ws from cameras c [B, 25]. ``jitter`` (stratified/importance randomness) defaults to training mode."""
        resolution = neural_rendering_resolution or self.config.neural_rendering_resolution
        planes = self.planes(ws, noise_mode)
        origins, directions = rays_from_labels(c.float(), resolution)
        rendered = render_rays(lambda points: self.query(planes, points), origins, directions,
                               self.config.render_settings, self.training if jitter is None else jitter)
        batch = ws.shape[0]
        feature_image = rendered["features"].permute(0, 2, 1).reshape(batch, -1, resolution, resolution) * 2.0 - 1.0
        depth_image = rendered["depth"].permute(0, 2, 1).reshape(batch, 1, resolution, resolution)
        rgb_raw = feature_image[:, :3]
        if resolution != self.config.neural_rendering_resolution:
            size = (self.config.neural_rendering_resolution,) * 2
            feature_image = F.interpolate(feature_image, size=size, mode="bilinear", align_corners=False, antialias=True)
        image = self.superresolution(feature_image[:, :3], feature_image, ws[:, -1], noise_mode)
        return {"image": image, "image_raw": rgb_raw, "image_depth": depth_image}

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "const",
                neural_rendering_resolution: int | None = None) -> dict[str, torch.Tensor]:
        ws = self.mapping(z, c, truncation_psi=truncation_psi)
        return self.synthesis(ws, c, neural_rendering_resolution=neural_rendering_resolution, noise_mode=noise_mode)


def save_generator(directory: str | Path, generator: TriplaneGenerator, extra: dict | None = None) -> Path:
    """``model.safetensors`` + ``config.json``; :func:`load_generator` is its exact inverse."""
    return save_checkpoint(directory, CHECKPOINT_KIND, generator.config, generator.state_dict(), extra)


def load_generator(directory: str | Path, device: str | torch.device = "cpu") -> TriplaneGenerator:
    config, _ = read_checkpoint_config(directory, CHECKPOINT_KIND, GeneratorConfig)
    generator = TriplaneGenerator(config)
    generator.load_state_dict(load_weights(directory, device="cpu"))
    return generator.to(device).eval().requires_grad_(False)


def read_generator_extra(directory: str | Path) -> dict:
    """The metadata saved beside the weights (training progress, dataset) without loading them."""
    return read_checkpoint_config(directory, CHECKPOINT_KIND, GeneratorConfig)[1]
