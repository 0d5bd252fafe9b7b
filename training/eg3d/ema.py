"""Exponential moving average of the generator's weights (the generator people sample from)."""

from __future__ import annotations

import torch


def ema_beta(batch_size: int, images_seen: int, half_life_images: int, rampup: float | None) -> float:
    """Decay per step so that the average's half-life is ``half_life_images`` (shorter early on with ramp-up)."""
    half_life = float(half_life_images)
    if rampup:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch_size / max(half_life, 1e-8))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    for ema_param, param in zip(ema.parameters(), model.parameters()):
        ema_param.copy_(param.detach().lerp(ema_param, beta))
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)
