"""One tri-plane radiance field fitted to posed images through the project's own volume renderer.

This is the EG3D representation without the GAN: the planes and the decoder are optimized directly
against the images of one head. On held-out cameras it tells whether the representation, the camera
convention and the renderer together can reproduce a head (a fit that does not beat the mean image
on unseen views points at a convention or renderer bug, not at GAN training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from backend.models.eg3d.triplane import TriplaneDecoder, sample_triplanes
from backend.models.eg3d.volume_renderer import RenderSettings, rays_from_labels, render_rays
from backend.progress import Progress, SilentProgress


@dataclass
class FitSettings:
    plane_resolution: int = 64
    plane_channels: int = 16
    decoder_hidden: int = 64
    stratified_samples: int = 24
    importance_samples: int = 24
    box_warp: float = 1.0
    white_background: bool = False
    steps: int = 400
    views_per_step: int = 4
    plane_lr: float = 0.1
    decoder_lr: float = 0.02
    seed: int = 0


class TriplaneField(nn.Module):
    """Learnable planes [1, 3, C, P, P] + EG3D's decoder; renders RGB in [-1, 1] from camera labels."""

    def __init__(self, settings: FitSettings) -> None:
        super().__init__()
        self.settings = settings
        size = (1, 3, settings.plane_channels, settings.plane_resolution, settings.plane_resolution)
        self.planes = nn.Parameter(torch.randn(size) * 0.1)
        self.decoder = TriplaneDecoder(settings.plane_channels, settings.decoder_hidden, 3)

    def render(self, labels: torch.Tensor, resolution: int, jitter: bool = False) -> torch.Tensor:
        origins, directions = rays_from_labels(labels.float(), resolution)
        planes = self.planes.expand(labels.shape[0], -1, -1, -1, -1)
        settings = RenderSettings(self.settings.stratified_samples, self.settings.importance_samples,
                                  self.settings.box_warp, self.settings.white_background)
        rendered = render_rays(lambda points: self.decoder(sample_triplanes(planes, points, self.settings.box_warp)),
                               origins, directions, settings, jitter)
        image = rendered["features"][..., :3].permute(0, 2, 1).reshape(labels.shape[0], 3, resolution, resolution)
        return image * 2.0 - 1.0


class FittedField:
    """A fitted field as mesh export asks for it (``backend.geometry.field.RadianceField``)."""

    def __init__(self, field: TriplaneField) -> None:
        self._field = field

    def _query(self, points: np.ndarray) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            tensor = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).unsqueeze(0)
            return self._field.decoder(sample_triplanes(self._field.planes, tensor, self._field.settings.box_warp))

    def density(self, points: np.ndarray) -> np.ndarray:
        return self._query(points)["sigma"][0, :, 0].numpy()

    def color(self, points: np.ndarray) -> np.ndarray:
        return self._query(points)["features"][0, :, :3].numpy()


def fit_triplane(images: torch.Tensor, labels: torch.Tensor, settings: FitSettings = FitSettings(),
                 progress: Progress | None = None) -> TriplaneField:
    """Fit a field to images [N, 3, R, R] in [-1, 1] seen from cameras labels [N, 25]."""
    progress = progress or SilentProgress()
    torch.manual_seed(settings.seed)
    field = TriplaneField(settings)
    optimizer = torch.optim.Adam([{"params": [field.planes], "lr": settings.plane_lr},
                                  {"params": field.decoder.parameters(), "lr": settings.decoder_lr}])
    rng = torch.Generator().manual_seed(settings.seed)
    resolution = images.shape[-1]
    for step in range(settings.steps):
        chosen = torch.randperm(len(images), generator=rng)[:settings.views_per_step]
        loss = torch.nn.functional.mse_loss(field.render(labels[chosen], resolution, jitter=True), images[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.update((step + 1) / settings.steps, f"fitting a tri-plane: step {step + 1}/{settings.steps}, loss {loss.item():.4f}")
    return field.eval()
