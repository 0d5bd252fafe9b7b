"""Training pairs for the style prior, made on the fly by the trained generator.

z -> mapping -> w -> render the avatar (frontally, or as augmentation from a nearby camera) -> image.
The prior learns to recover w from the image. Nothing is written to disk: every step sees new avatars.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from blender_addon.formats.cameras import orbit_label


RENDER_CHUNK = 8
"""Avatars rendered per generator call: the default batch of 32 at 512² in one call overflowed CUDA's
channels-last upsampling (2^31 elements) on an H200 in GPU run 1."""


@dataclass
class PairOptions:
    truncation_psi: float = 1.0
    """Truncation of the sampled w: 1.0 covers the generator's whole distribution."""
    nearby_view_probability: float = 0.5
    """How often a pair is rendered from a camera near the front instead of exactly frontally, so
    reference images that are not perfectly frontal still map to the right w."""
    yaw_jitter_degrees: float = 20.0
    pitch_jitter_degrees: float = 10.0


def frontal_labels(batch: int, device) -> torch.Tensor:
    return torch.tensor([orbit_label(0.0, 0.0)] * batch, dtype=torch.float32, device=device)


def jittered_labels(batch: int, options: PairOptions, rng: torch.Generator, device) -> torch.Tensor:
    """Frontal camera labels, a random share of them moved to a nearby yaw/pitch on the orbit."""
    nearby = torch.rand(batch, generator=rng) < options.nearby_view_probability
    yaw = (torch.rand(batch, generator=rng) * 2 - 1) * options.yaw_jitter_degrees * nearby
    pitch = (torch.rand(batch, generator=rng) * 2 - 1) * options.pitch_jitter_degrees * nearby
    labels = [orbit_label(float(y), float(p)) for y, p in zip(yaw, pitch)]
    return torch.tensor(labels, dtype=torch.float32, device=device)


def broadcast_w(w: torch.Tensor, num_ws: int) -> torch.Tensor:
    """One w per avatar [B, w_dim] -> every synthesis layer's ws [B, num_ws, w_dim]."""
    return w[:, None, :].expand(-1, num_ws, -1)


@torch.no_grad()
def sample_w(generator, batch: int, rng: torch.Generator, truncation_psi: float, device) -> torch.Tensor:
    """Single w per avatar from fresh z, with the frontal camera as the mapping's pose condition."""
    z = torch.randn(batch, generator.config.z_dim, generator=rng).to(device)
    ws = generator.mapping(z, frontal_labels(batch, device), truncation_psi=truncation_psi)
    return ws[:, 0]


@torch.no_grad()
def render(generator, w: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Images [B, 3, H, W] in [-1, 1] of the avatars with style codes ``w`` seen from ``labels``, rendered
    ``RENDER_CHUNK`` at a time: the same images, with activations bounded at any batch size."""
    chunks = [generator.synthesis(broadcast_w(w[start:start + RENDER_CHUNK], generator.num_ws), labels[start:start + RENDER_CHUNK])["image"]
              for start in range(0, len(w), RENDER_CHUNK)]
    return torch.cat(chunks).float().clamp(-1, 1)


@torch.no_grad()
def make_pairs(generator, batch: int, options: PairOptions, rng: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(w [B, w_dim], images [B, 3, H, W]) for one training step."""
    w = sample_w(generator, batch, rng, options.truncation_psi, device)
    return w, render(generator, w, jittered_labels(batch, options, rng, device))


@torch.no_grad()
def w_statistics(generator, samples: int, rng: torch.Generator, device, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of the generator's w, from ``samples`` mapped z (truncation 1)."""
    parts = [sample_w(generator, min(chunk, samples - start), rng, 1.0, device) for start in range(0, samples, chunk)]
    every = torch.cat(parts)
    return every.mean(0), every.std(0)
