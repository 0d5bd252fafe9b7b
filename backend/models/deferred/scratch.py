"""The deferred renderer without a latent-diffusion prior (the paper's "w/o LDM prior" ablation).

Everything trains from scratch and nothing is downloaded: the condition channels are embedded
(scratch_unet.py), concatenated with the noisy image and denoised by a small UNet in pixel space,
attending to the expression tokens. ``model.safetensors`` holds every weight; the architecture is in
the config. Meant for small images (32-128 px), where it learns on a CPU in minutes.
"""

from __future__ import annotations

import torch
from torch import nn

from .renderer import DeferredRenderer, DeferredRendererConfig, sampling_scheduler
from .scratch_unet import IMAGE_CHANNELS, NOISE_SCHEDULE, build_condition_embedding, build_scratch_unet


class ScratchRenderer(DeferredRenderer):
    """Trainable: ``condition_embedding``, ``unet``, ``triplanes``, ``expression_encoder``."""

    def __init__(self, config: DeferredRendererConfig) -> None:
        from diffusers import DDPMScheduler

        super().__init__(config)
        architecture = config.scratch_unet
        self.size_multiple = architecture.size_multiple
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # a fresh renderer is the same for the same config
            self.condition_embedding = build_condition_embedding(config.channels.count, architecture)
            self.unet = build_scratch_unet(architecture, config.expression_tokens)
            self.add_condition_modules(architecture.cross_attention_dim)
        self.scheduler = sampling_scheduler(config, DDPMScheduler(**NOISE_SCHEDULE).config)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, control: torch.Tensor, expression_tokens: torch.Tensor) -> torch.Tensor:
        embedded = self.condition_embedding(control.to(latents.dtype))
        tokens = expression_tokens.to(latents.dtype)
        in_time_embedding = tokens.flatten(1) if self.config.scratch_unet.expression_in_time_embedding else None
        return self.unet(torch.cat([latents, embedded], dim=1), timesteps, encoder_hidden_states=tokens,
                         class_labels=in_time_embedding, return_dict=False)[0]

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel space: the images themselves."""
        return images.to(self.dtype)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.clamp(-1.0, 1.0)

    def latent_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        return batch, IMAGE_CHANNELS, height, width

    def network_parameters(self) -> list[nn.Parameter]:
        return [*self.condition_embedding.parameters(), *self.unet.parameters()]
