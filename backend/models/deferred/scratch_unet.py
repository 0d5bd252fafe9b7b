"""The architecture of a deferred renderer without a latent-diffusion prior: a small UNet trained from scratch.

DiffusionAvatars' "w/o LDM prior" ablation: no ControlNet and no frozen base; the condition channels
are embedded by two convolutions (the paper: to 320 channels; here ``condition_embedding_channels``)
and concatenated with the noisy image, and a diffusers ``UNet2DConditionModel`` built from this
config denoises in PIXEL space (no autoencoder, so only small images are affordable). The expression
tokens are the UNet's whole cross-attention context (there is no text prompt).

The config is saved in the checkpoint (``DeferredRendererConfig.scratch_unet``); the diffusers
config follows from it, so the same config always builds the same network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGE_CHANNELS = 3
NOISE_SCHEDULE: dict[str, Any] = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"}
"""The from-scratch renderer's training noise schedule (the cosine schedule suits small pixel images)."""


@dataclass(frozen=True)
class ScratchUNetConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 96)
    """Widths of the UNet's levels; each level halves the resolution (images must be multiples of 2^(levels-1))."""
    layers_per_block: int = 1
    attention_from_level: int = 1
    """Levels from this one down (and the middle block) carry self- and expression cross-attention;
    the full-resolution levels above it are plain residual blocks (attention there is costly)."""
    attention_head_dim: int = 8
    cross_attention_dim: int = 64
    """Width of the expression tokens the UNet attends to."""
    condition_embedding_channels: int = 32
    norm_num_groups: int = 8
    expression_in_time_embedding: bool = False
    """Also add the expression tokens (flattened, through a small MLP) to the timestep embedding, which shifts every
    residual block's features: the expression then reaches the full-resolution levels, which carry no attention."""

    def __post_init__(self) -> None:
        if not self.block_out_channels or any(width < 1 for width in self.block_out_channels):
            raise ValueError("block_out_channels must list at least one positive width")
        widths = (*self.block_out_channels, self.condition_embedding_channels)
        if any(width % self.norm_num_groups for width in widths):
            raise ValueError(f"every width ({widths}) must be a multiple of norm_num_groups ({self.norm_num_groups})")
        if any(width % self.attention_head_dim for width in self.block_out_channels):
            raise ValueError(f"every width must be a multiple of attention_head_dim ({self.attention_head_dim})")
        if not 0 <= self.attention_from_level < len(self.block_out_channels):
            raise ValueError(f"attention_from_level must lie in [0, {len(self.block_out_channels) - 1}]")
        if self.layers_per_block < 1 or self.cross_attention_dim < 1 or self.condition_embedding_channels < 1:
            raise ValueError("layers_per_block, cross_attention_dim and condition_embedding_channels must be >= 1")

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


def scratch_unet_with_widths(widths: list[int], expression_in_time_embedding: bool = False) -> ScratchUNetConfig:
    """The default architecture with these level widths (and, if asked, the expression in the timestep embedding);
    impossible widths are refused, saying why."""
    from ...errors import InvalidInput

    try:
        return ScratchUNetConfig(block_out_channels=tuple(widths), expression_in_time_embedding=expression_in_time_embedding)
    except ValueError as error:
        raise InvalidInput(f"the from-scratch UNet cannot have widths {widths}: {error}", "use multiples of 8, e.g. 32 64 96",
                           field="scratch_widths") from None


def diffusers_unet_config(config: ScratchUNetConfig, expression_tokens: int) -> dict[str, Any]:
    """The ``UNet2DConditionModel`` keyword arguments this config stands for, with ``expression_tokens`` tokens."""
    levels = len(config.block_out_channels)
    attends = [level >= config.attention_from_level for level in range(levels)]
    down = ["CrossAttnDownBlock2D" if attend else "DownBlock2D" for attend in attends]
    return {
        "sample_size": None,
        "in_channels": IMAGE_CHANNELS + config.condition_embedding_channels,
        "out_channels": IMAGE_CHANNELS,
        "down_block_types": tuple(down),
        "up_block_types": tuple("CrossAttnUpBlock2D" if attend else "UpBlock2D" for attend in reversed(attends)),
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "block_out_channels": tuple(config.block_out_channels),
        "layers_per_block": config.layers_per_block,
        "norm_num_groups": config.norm_num_groups,
        "cross_attention_dim": config.cross_attention_dim,
        "attention_head_dim": config.attention_head_dim,
        **({"class_embed_type": "projection", "projection_class_embeddings_input_dim": expression_tokens * config.cross_attention_dim}
           if config.expression_in_time_embedding else {}),
    }


def build_scratch_unet(config: ScratchUNetConfig, expression_tokens: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**diffusers_unet_config(config, expression_tokens))


def build_condition_embedding(condition_channels: int, config: ScratchUNetConfig):
    """Conditions (B, condition_channels, H, W) -> (B, condition_embedding_channels, H, W), same size."""
    from torch import nn

    width = config.condition_embedding_channels
    return nn.Sequential(nn.Conv2d(condition_channels, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1))
