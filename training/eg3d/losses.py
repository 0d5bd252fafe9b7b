"""GAN losses of EG3D: non-saturating logistic, R1 on both D inputs, density smoothness (L1), and
the Gaussian blur of D's super-resolved input that fades out early in training."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(discriminator, image: torch.Tensor, image_raw: torch.Tensor, label: torch.Tensor,
               preprocess=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared gradient norm of D's real logits w.r.t. both real inputs, per sample summed; and the logits.

    ``preprocess(image, image_raw)`` (the blur fade-in) runs inside the graph, so the gradient is taken
    with respect to the real images themselves, as in EG3D, not their blurred copies."""
    image = image.detach().requires_grad_(True)
    image_raw = image_raw.detach().requires_grad_(True)
    logits = discriminator(*(preprocess(image, image_raw) if preprocess else (image, image_raw)), label)
    grad_image, grad_raw = torch.autograd.grad(logits.sum(), [image, image_raw], create_graph=True)
    penalty = grad_image.square().sum(dim=[1, 2, 3]) + grad_raw.square().sum(dim=[1, 2, 3])
    return penalty.mean(), logits


DENSITY_REG_EXTENT = 1.0
"""Density regularization samples the cube [-1, 1]³ of head space, as EG3D does, whatever the box: with
the default box (side 1) one sample in eight lands inside it. Sampling only inside the box would smooth
eight times harder, and thin parts (noses, ears) would vanish."""


def density_regularization(generator, ws: torch.Tensor, count: int, noise: float,
                           rng: torch.Generator | None = None) -> torch.Tensor:
    """L1 between raw densities at random points of [-1, 1]³ and at points displaced by N(0, noise)."""
    batch = ws.shape[0]
    points = (torch.rand(batch, count, 3, generator=rng) * 2 - 1).to(ws.device) * DENSITY_REG_EXTENT
    displaced = points + torch.randn(points.shape, generator=rng).to(ws.device) * noise
    planes = generator.planes(ws, noise_mode="random")
    sigma = generator.query(planes, torch.cat([points, displaced], dim=1))["sigma"]
    return (sigma[:, :count] - sigma[:, count:]).abs().mean()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] images; sigma in pixels (<= 0: unchanged)."""
    if sigma <= 0:
        return images
    radius = max(1, int(math.ceil(3 * sigma)))
    radius = min(radius, images.shape[-1] - 1)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    horizontal = kernel.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.reshape(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    images = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), horizontal, groups=channels)
    return F.conv2d(F.pad(images, (0, 0, radius, radius), mode="reflect"), vertical, groups=channels)


def blur_sigma_at(images_seen: int, sigma: float, fade_images: int) -> float:
    """Linear fade of the blur from ``sigma`` to 0 over the first ``fade_images`` images."""
    if fade_images <= 0:
        return 0.0
    return sigma * max(0.0, 1.0 - images_seen / fade_images)
