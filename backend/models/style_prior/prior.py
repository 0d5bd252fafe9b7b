"""The style prior: a conditional diffusion model over the generator's style code w.

StyleAvatar3D's image-guided mode. A diffusers ``PriorTransformer`` (the unCLIP prior) denoises a
single w vector given the embedding of an image of the avatar; at inference its sample replaces the
generator's mapping network. Why a single w and not every layer's ws: the generator's mapping
network broadcasts one w to all layers, so one vector carries everything the image can determine,
and it keeps the sequence the transformer attends over short (4 tokens).

- w is normalised per dimension with statistics of the generator's own w distribution; they live in
  the transformer's ``clip_mean`` / ``clip_std`` (its ``post_process_latents`` undoes the
  normalisation), so they are saved with the weights.
- The network predicts the clean normalised w (x0), as the unCLIP prior does.
- Classifier-free guidance: training zeroes the embedding with probability p_drop; sampling mixes
  ``x0 = uncond + guidance * (cond - uncond)``, so guidance 0 is the unconditional prior and
  guidance 1 the plain conditional model.
- Sampling is DDIM (deterministic, eta 0) from seeded Gaussian noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import StylePriorConfig
from .encoders import ImageEncoder, build_encoder

DEFAULT_SAMPLING_STEPS = 25
DEFAULT_GUIDANCE_SCALE = 1.5
MIN_W_STD = 1e-4


class StylePrior(nn.Module):
    def __init__(self, config: StylePriorConfig, resolve: Callable[[str], Path] = Path) -> None:
        """``resolve`` turns the config's CLIP model reference into a local folder."""
        super().__init__()
        from diffusers import PriorTransformer

        self.config = config
        self.encoder: ImageEncoder = build_encoder(config.encoder, resolve)
        if self.encoder.embedding_dim != config.condition_dim:
            raise ValueError(f"the image encoder outputs {self.encoder.embedding_dim} numbers but condition_dim is {config.condition_dim}")
        size = config.denoiser
        self.denoiser = PriorTransformer(
            num_attention_heads=size.num_attention_heads,
            attention_head_dim=size.attention_head_dim,
            num_layers=size.num_layers,
            embedding_dim=config.w_dim,
            num_embeddings=0,
            additional_embeddings=4,
            dropout=size.dropout,
            embedding_proj_norm_type="layer",
            encoder_hid_proj_type=None,
            added_emb_type="prd",
            embedding_proj_dim=config.condition_dim,
            clip_embed_dim=config.w_dim,
        )
        # A linear read-out of normalised w from the embedding: it only serves to train the conv encoder.
        self.w_probe = nn.Linear(config.condition_dim, config.w_dim) if self._regresses_w() else None
        self.denoiser.clip_mean.requires_grad_(False)
        self.denoiser.clip_std.requires_grad_(False).fill_(1.0)

    # --- w statistics ---------------------------------------------------------------------------
    @torch.no_grad()
    def set_w_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension mean and standard deviation of the generator's w (from many mapped z)."""
        self.denoiser.clip_mean.copy_(mean.reshape(1, -1))
        self.denoiser.clip_std.copy_(std.reshape(1, -1).clamp_min(MIN_W_STD))

    def normalize_w(self, w: torch.Tensor) -> torch.Tensor:
        return (w - self.denoiser.clip_mean) / self.denoiser.clip_std

    def denormalize_w(self, normalized: torch.Tensor) -> torch.Tensor:
        return self.denoiser.post_process_latents(normalized)

    # --- the network ----------------------------------------------------------------------------
    def scheduler(self):
        from diffusers import DDIMScheduler

        diffusion = self.config.diffusion
        return DDIMScheduler(
            num_train_timesteps=diffusion.num_train_timesteps,
            beta_schedule=diffusion.beta_schedule,
            prediction_type="sample",
            clip_sample=False,
            set_alpha_to_one=True,
            timestep_spacing="trailing",
        )

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings [B, condition_dim] of images [B, 3, H, W] in [-1, 1]."""
        return self.encoder(images)

    def predict_clean(self, noisy: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The denoiser's estimate of the clean normalised w."""
        return self.denoiser(noisy, timesteps, proj_embedding=condition).predicted_image_embedding

    def training_loss(self, w: torch.Tensor, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising loss for pairs (w [B, w_dim], images of those avatars [B, 3, H, W]), plus the
        conv encoder's w regression (see ConvEncoderConfig.regression_weight)."""
        condition = self.embed(images)
        batch = w.shape[0]
        keep = torch.rand(batch, 1, generator=generator, device="cpu").to(w.device) >= self.config.diffusion.condition_dropout
        condition_kept = condition * keep.to(condition.dtype)
        clean = self.normalize_w(w)
        noise = torch.randn(clean.shape, generator=generator, device="cpu").to(w.device)
        timesteps = torch.randint(0, self.config.diffusion.num_train_timesteps, (batch,), generator=generator, device="cpu").to(w.device)
        noisy = self.scheduler().add_noise(clean, noise, timesteps)
        loss = F.mse_loss(self.predict_clean(noisy, timesteps, condition_kept), clean)
        if self.w_probe is not None:
            loss = loss + self.config.encoder.conv.regression_weight * F.mse_loss(self.w_probe(condition), clean)
        return loss

    def _regresses_w(self) -> bool:
        return self.encoder.trainable and self.config.encoder.conv.regression_weight > 0

    # --- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        condition: torch.Tensor | None,
        steps: int = DEFAULT_SAMPLING_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        seed: int = 0,
        batch_size: int | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """w [B, w_dim] sampled by DDIM given image embeddings ``condition`` [B, condition_dim].

        ``condition=None`` samples the unconditional prior (``batch_size`` of them). ``on_step(i, n)``
        is called after each step (progress reporting and cancellation).
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        device = self.denoiser.clip_mean.device
        batch = condition.shape[0] if condition is not None else (batch_size or 1)
        scheduler = self.scheduler()
        scheduler.set_timesteps(steps, device=device)
        noise_generator = torch.Generator(device="cpu").manual_seed(int(seed))
        sample = torch.randn((batch, self.config.w_dim), generator=noise_generator).to(device)
        null = torch.zeros(batch, self.config.condition_dim, device=device)
        for index, timestep in enumerate(scheduler.timesteps):
            clean = self._guided_clean(sample, timestep, condition, null, guidance_scale)
            sample = scheduler.step(clean, timestep, sample, eta=0.0).prev_sample
            if on_step is not None:
                on_step(index + 1, steps)
        return self.denormalize_w(sample)

    def _guided_clean(self, sample, timestep, condition, null, guidance_scale: float) -> torch.Tensor:
        if condition is None:
            return self.predict_clean(sample, timestep, null)
        both = self.predict_clean(torch.cat([sample, sample]), timestep, torch.cat([condition.to(null.dtype), null]))
        conditional, unconditional = both.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the denoiser (with w statistics), and the encoder if it was trained."""
        state = self.state_dict()
        if self.encoder.trainable:
            return state
        return {name: tensor for name, tensor in state.items() if not name.startswith("encoder.")}
