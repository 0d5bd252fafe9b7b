"""Settings of the style prior: the denoiser over w, its diffusion schedule, and the image encoder.

One dataclass tree, saved as the checkpoint's ``config.json`` and loaded back exactly. Presets give
sizes that make sense: ``tiny`` for tests, ``small`` for a quick run on one GPU, ``full`` for the
generator's full 512-dimensional w.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from blender_addon.formats.errors import FormatError

ENCODER_KINDS = ("conv", "clip")


@dataclass
class DenoiserConfig:
    """Size of the diffusers ``PriorTransformer`` that denoises w (the unCLIP prior's shape)."""

    num_attention_heads: int = 8
    attention_head_dim: int = 64
    num_layers: int = 6
    dropout: float = 0.0


@dataclass
class DiffusionConfig:
    """The noise schedule, and how often training hides the image (classifier-free guidance)."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    condition_dropout: float = 0.1
    """p_drop: the probability that a training pair's image embedding is zeroed, which teaches
    the same network the unconditional prior used by guidance."""


@dataclass
class ConvEncoderConfig:
    """The project-trained convolutional image encoder: stride-2 blocks down to 4x4, then a linear map."""

    image_size: int = 128
    base_channels: int = 32
    max_channels: int = 256
    embedding_dim: int = 512
    regression_weight: float = 1.0
    """Weight of an auxiliary loss that asks a linear map of the embedding to equal the normalised w.
    It gives the encoder a direct signal from the first step (through the denoiser alone it learns
    slowly, and an encoder that has not learned yet leaves the prior unconditional); 0 turns it off."""


@dataclass
class EncoderConfig:
    kind: str = "conv"
    """'conv' (trained with the prior on the generator's own renders) or 'clip' (frozen CLIP vision
    weights from a local folder)."""
    conv: ConvEncoderConfig = field(default_factory=ConvEncoderConfig)
    clip_model: str = ""
    """For kind 'clip': a local folder holding a transformers CLIPVisionModelWithProjection
    (config.json + model.safetensors), or a model-store name."""


@dataclass
class StylePriorConfig:
    w_dim: int = 512
    """Must equal the generator's w_dim: the prior predicts one w, which is broadcast to every layer."""
    condition_dim: int = 512
    """Length of the image embedding; equals the encoder's output (conv embedding_dim or CLIP projection_dim)."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def __post_init__(self) -> None:
        if self.encoder.kind not in ENCODER_KINDS:
            raise FormatError("encoder.kind", f"must be one of {', '.join(ENCODER_KINDS)}, got {self.encoder.kind!r}")
        if self.encoder.kind == "clip" and not self.encoder.clip_model:
            raise FormatError("encoder.clip_model", "is empty", "name the local folder of a CLIPVisionModelWithProjection")
        if self.encoder.kind == "conv" and self.encoder.conv.embedding_dim != self.condition_dim:
            raise FormatError("condition_dim", f"is {self.condition_dim} but the conv encoder outputs {self.encoder.conv.embedding_dim}",
                              "set both to the same number")
        if not 0.0 <= self.diffusion.condition_dropout < 1.0:
            raise FormatError("diffusion.condition_dropout", f"must lie in [0, 1), got {self.diffusion.condition_dropout}")
        size = self.encoder.conv.image_size
        if size < 8 or size & (size - 1):
            raise FormatError("encoder.conv.image_size", f"must be a power of two >= 8, got {size}")


PRESETS: dict[str, StylePriorConfig] = {
    "tiny": StylePriorConfig(
        w_dim=32, condition_dim=32,
        denoiser=DenoiserConfig(num_attention_heads=2, attention_head_dim=16, num_layers=2),
        diffusion=DiffusionConfig(num_train_timesteps=100),
        encoder=EncoderConfig(conv=ConvEncoderConfig(image_size=32, base_channels=8, max_channels=32, embedding_dim=32)),
    ),
    "small": StylePriorConfig(
        w_dim=256, condition_dim=256,
        denoiser=DenoiserConfig(num_attention_heads=4, attention_head_dim=64, num_layers=4),
        encoder=EncoderConfig(conv=ConvEncoderConfig(image_size=64, base_channels=32, max_channels=256, embedding_dim=256)),
    ),
    "full": StylePriorConfig(),
}


def preset(name: str, w_dim: int | None = None) -> StylePriorConfig:
    """A preset config, with w_dim (and the conv embedding size) matched to a generator when given."""
    if name not in PRESETS:
        raise FormatError("config", f"unknown preset {name!r}", f"use one of: {', '.join(PRESETS)}")
    config = PRESETS[name]
    if w_dim is None:
        return replace(config)
    return replace(config, w_dim=w_dim)
