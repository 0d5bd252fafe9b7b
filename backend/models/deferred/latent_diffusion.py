"""The deferred renderer on a latent-diffusion prior (the method): ControlNet on a frozen Stable Diffusion base.

A frozen base (UNet, VAE, and the empty-prompt text embedding) is steered by a trainable ControlNet
copied from the base UNet, whose input is the renderer's condition channels; the expression tokens
enter the frozen UNet through extra cross-attention layers (expression_attention.py). Denoising runs
in the VAE's latent space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .expression_attention import add_expression_attention
from .renderer import DeferredRenderer, DeferredRendererConfig, sampling_scheduler

CONDITIONING_EMBEDDING_WIDTHS = (16, 32, 96, 256)


@dataclass
class FrozenBase:
    """The frozen parts, kept outside the module tree so that ``state_dict`` holds only what trains."""

    unet: Any
    vae: Any
    prompt_embedding: torch.Tensor
    """(1, tokens, width) text encoder output for ``config.prompt``."""
    scheduler: Any


def base_fingerprint(unet, vae) -> dict[str, Any]:
    """The architecture facts a checkpoint depends on; compared when loading onto a base model."""
    return {
        "unet_block_out_channels": list(unet.config.block_out_channels),
        "unet_down_block_types": list(unet.config.down_block_types),
        "cross_attention_dim": unet.config.cross_attention_dim,
        "latent_channels": vae.config.latent_channels,
        "vae_downsampling": vae_downsampling(vae),
    }


def vae_downsampling(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


class LatentDiffusionRenderer(DeferredRenderer):
    """Trainable: ``controlnet``, ``triplanes``, ``expression_encoder``, ``expression_layers``."""

    def __init__(self, config: DeferredRendererConfig, unet, vae, text_encoder, tokenizer, scheduler) -> None:
        from diffusers import ControlNetModel

        super().__init__(config)
        for frozen in (unet, vae, text_encoder):
            frozen.requires_grad_(False)
            frozen.eval()
        self.size_multiple = vae_downsampling(vae) * 2 ** (len(unet.config.block_out_channels) - 1)
        widths = CONDITIONING_EMBEDDING_WIDTHS[: int(math.log2(vae_downsampling(vae))) + 1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # a fresh renderer is the same for the same config
            self.controlnet = ControlNetModel.from_unet(unet, conditioning_channels=config.channels.count,
                                                        conditioning_embedding_out_channels=widths)
            self.add_condition_modules(unet.config.cross_attention_dim)
            self.expression_layers = add_expression_attention(unet, config.expression_tokens)
        self.fingerprint = base_fingerprint(unet, vae)
        self.base = FrozenBase(unet, vae, _prompt_embedding(config.prompt, text_encoder, tokenizer),
                               sampling_scheduler(config, scheduler.config))

    @property
    def scheduler(self):
        return self.base.scheduler

    def place(self, device, dtype=torch.float32) -> "LatentDiffusionRenderer":
        self.to(device=device, dtype=dtype)
        for frozen in (self.base.unet, self.base.vae):
            frozen.to(device=device)
            if frozen.dtype != dtype:
                frozen.to(dtype=dtype)
        self.base.prompt_embedding = self.base.prompt_embedding.to(device=device, dtype=dtype)
        return self

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, control: torch.Tensor, expression_tokens: torch.Tensor) -> torch.Tensor:
        text = self.base.prompt_embedding.expand(latents.shape[0], -1, -1).to(latents.dtype)
        down_residuals, mid_residual = self.controlnet(latents, timesteps, encoder_hidden_states=text,
                                                       controlnet_cond=control, return_dict=False)
        context = torch.cat([text, expression_tokens.to(text.dtype)], dim=1)
        return self.base.unet(latents, timesteps, encoder_hidden_states=context,
                              down_block_additional_residuals=down_residuals,
                              mid_block_additional_residual=mid_residual, return_dict=False)[0]

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scaled latents: a posterior sample, as in training LDMs."""
        posterior = self.base.vae.encode(images.to(self.dtype)).latent_dist
        return posterior.sample(generator) * self.base.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        images = self.base.vae.decode(latents / self.base.vae.config.scaling_factor, return_dict=False)[0]
        return images.clamp(-1.0, 1.0)

    def latent_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        factor = self.fingerprint["vae_downsampling"]
        return batch, self.fingerprint["latent_channels"], height // factor, width // factor

    def network_parameters(self) -> list[nn.Parameter]:
        return [*self.controlnet.parameters(), *self.expression_layers.parameters()]


def _prompt_embedding(prompt: str, text_encoder, tokenizer) -> torch.Tensor:
    tokens = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return text_encoder(tokens.input_ids.to(text_encoder.device))[0].detach()
