"""How well the prior recovers an avatar from its picture, measured in the generator's own images.

For held-out avatars with known w: render them frontally, predict w from that render, re-render the
prediction, and compare pixels. Two baselines put the number in context: a random w (another
avatar; the issue's bar), the mean w (the "average avatar", a stricter bar) and the prior's own
sample with guidance 0 (the image ignored): beating the last two shows the image steered the w.
"""

from __future__ import annotations

import torch

from .pairs import frontal_labels, render, sample_w


@torch.no_grad()
def reconstruction_errors(prior, generator, avatars: int, seed: int, steps: int, guidance_scale: float, device) -> dict[str, float]:
    rng = torch.Generator().manual_seed(seed)
    labels = frontal_labels(avatars, device)
    known_w = sample_w(generator, avatars, rng, 1.0, device)
    references = render(generator, known_w, labels)
    condition = prior.embed(references)
    predicted_w = prior.sample(condition, steps=steps, guidance_scale=guidance_scale, seed=seed)
    unconditional_w = prior.sample(condition, steps=steps, guidance_scale=0.0, seed=seed)
    random_w = sample_w(generator, avatars, rng, 1.0, device)
    mean_w = prior.denormalize_w(torch.zeros_like(known_w))

    def image_error(w: torch.Tensor) -> float:
        return float(((render(generator, w, labels) - references) ** 2).mean())

    def w_distance(w: torch.Tensor) -> float:
        return float((prior.normalize_w(w) - prior.normalize_w(known_w)).norm(dim=1).mean())

    return {
        "avatars": avatars,
        "predicted_w_image_mse": image_error(predicted_w),
        "random_w_image_mse": image_error(random_w),
        "mean_w_image_mse": image_error(mean_w),
        "unconditional_w_image_mse": image_error(unconditional_w),
        "predicted_w_distance": w_distance(predicted_w),
        "random_w_distance": w_distance(random_w),
        "mean_w_distance": w_distance(mean_w),
    }
