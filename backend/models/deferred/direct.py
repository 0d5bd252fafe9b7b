"""Direct prediction: the paper's "w/o diffusion" baseline, for comparison.

The same conditions, denoiser and expression layers, but one forward pass: the denoiser sees an
all-zero latent at the last training timestep and its output is taken as the image latent itself
(with no prior: the image), trained with MSE against the target's. No noise, no sampling loop.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _fixed_inputs(renderer, batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    latents = torch.zeros(renderer.latent_shape(batch, height, width), device=renderer.device, dtype=renderer.dtype)
    last_step = renderer.scheduler.config.num_train_timesteps - 1
    timesteps = torch.full((batch,), last_step, device=renderer.device, dtype=torch.long)
    return latents, timesteps


def loss(renderer, latents: torch.Tensor, control: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    zeros, timesteps = _fixed_inputs(renderer, control.shape[0], control.shape[-2], control.shape[-1])
    prediction = renderer.predict(zeros.to(latents.dtype), timesteps, control, tokens)
    return F.mse_loss(prediction.float(), latents.float())


def predict_latents(renderer, control: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    zeros, timesteps = _fixed_inputs(renderer, control.shape[0], control.shape[-2], control.shape[-1])
    return renderer.predict(zeros, timesteps, control, tokens)
