"""Random-weight models at real sizes, built from the configs the project ships for single-file loading
(``backend/models/architectures.py``) directly on the device: nothing is allocated on the CPU first and
nothing is downloaded. ``Sizes.tiny`` shrinks the same structures so that the benchmark runs on a CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from backend.models.architectures import BASE_ARCHITECTURES, CONTROLNET_ARCHITECTURES
from backend.models.diffusion_loading import BaseComponents, scheduler_from_config

TINY_UNET = {"block_out_channels": [32, 32, 64, 64], "layers_per_block": 1, "norm_num_groups": 8}
TINY_SD21_HEADS = [2, 2, 4, 4]
TINY_VAE = {"block_out_channels": [32, 32, 32, 32], "layers_per_block": 1, "norm_num_groups": 8}
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}


@dataclass(frozen=True)
class Sizes:
    """What one benchmark run measures at: the issue's sizes, or tiny ones for a CPU smoke run."""

    tiny: bool
    resolution: int
    steps: int
    batches: tuple[int, ...]
    memory_batches: tuple[int, ...]
    guidance: float = 7.5
    deferred_condition_channels: int = 73
    """The issue's 73-channel ControlNet: 7 geometry channels + 3 planes x 22 features (our default is 16 per plane)."""
    mesh_grid: int = 256
    texture_size: int = 1024
    mesh_faces: int = 60000
    training_steps: int = 5
    training_warmup: int = 2
    eg3d_preset: str = "small"
    style_prior_preset: str = "small"
    extra: dict = field(default_factory=dict)

    @classmethod
    def issue(cls) -> "Sizes":
        return cls(tiny=False, resolution=512, steps=20, batches=(1, 8), memory_batches=(1, 2, 4, 8))

    @classmethod
    def small(cls) -> "Sizes":
        """Everything tiny: models of the shipped structures with a few channels, 64 px, 2 steps."""
        return cls(tiny=True, resolution=64, steps=2, batches=(1, 2), memory_batches=(1, 2), mesh_grid=32,
                   texture_size=64, mesh_faces=2000, training_steps=1, training_warmup=1, eg3d_preset="tiny",
                   style_prior_preset="tiny")

    @property
    def triplane_channels(self) -> int:
        return (self.deferred_condition_channels - 7) // 3


def base_configs(architecture: str, sizes: Sizes) -> dict[str, dict]:
    configs = copy.deepcopy(BASE_ARCHITECTURES[architecture])
    if sizes.tiny:
        configs["unet"].update(TINY_UNET, sample_size=sizes.resolution // 8)
        configs["unet"]["cross_attention_dim"] = TINY_TEXT["hidden_size"]
        if architecture != "sd15":
            configs["unet"]["attention_head_dim"] = TINY_SD21_HEADS
        configs["vae"].update(TINY_VAE, sample_size=sizes.resolution)
        configs["text_encoder"].update(TINY_TEXT)
    return configs


def _without_class_names(config: dict) -> dict:
    return {key: value for key, value in config.items() if not key.startswith("_")}


def tokenizer(folder: Path):
    """CLIP's token ids within the real vocabulary size; the benchmark's prompts need no real vocabulary."""
    from transformers import CLIPTokenizer

    from backend.models.tiny import write_tiny_tokenizer

    write_tiny_tokenizer(folder)
    return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def build_base(architecture: str, sizes: Sizes, device: torch.device, dtype: torch.dtype, tokenizer_folder: Path,
               text_layers: int | None = None) -> BaseComponents:
    """UNet, VAE, text encoder and scheduler of ``architecture`` ('sd15', 'sd21-base') with random weights on ``device``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    configs = base_configs(architecture, sizes)
    text_config = dict(configs["text_encoder"])
    if text_layers is not None:
        text_config["num_hidden_layers"] = text_layers
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(_without_class_names(configs["unet"]))
        vae = AutoencoderKL.from_config(_without_class_names(configs["vae"]))
        text_encoder = CLIPTextModel(CLIPTextConfig(**_without_class_names(text_config)))
    for module in (unet, vae, text_encoder):
        module.to(dtype=dtype).eval().requires_grad_(False)
    return BaseComponents(unet, vae, text_encoder, tokenizer(tokenizer_folder), scheduler_from_config(configs["scheduler"]))


def build_controlnet(unet, device: torch.device, dtype: torch.dtype, conditioning_channels: int = 3, seed: int = 1) -> Any:
    """A ControlNet copied from ``unet`` (the shipped SD 1.5 ControlNet layout; SD 2.1's is the same copy)."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    embedding = CONTROLNET_ARCHITECTURES["controlnet-sd15"]["conditioning_embedding_out_channels"]
    with torch.device(device):
        controlnet = ControlNetModel.from_unet(unet, conditioning_channels=conditioning_channels,
                                               conditioning_embedding_out_channels=tuple(embedding))
    return controlnet.to(dtype=dtype).eval().requires_grad_(False)


def build_eg3d(config, device: torch.device):
    from backend.models.eg3d.generator import TriplaneGenerator

    torch.manual_seed(0)
    with torch.device(device):
        generator = TriplaneGenerator(config)
    return generator.eval().requires_grad_(False)


def eg3d_config(sizes: Sizes):
    from backend.models.eg3d.generator import GeneratorConfig, tiny_generator_config

    return tiny_generator_config() if sizes.tiny else GeneratorConfig()


def build_deferred_renderer(sizes: Sizes, device: torch.device, dtype: torch.dtype, tokenizer_folder: Path,
                            triplane_channels: int | None = None):
    """Our deferred renderer over an SD 2.1-size base (its ControlNet, tri-planes and expression layers)."""
    from backend.models.deferred.channels import ChannelLayout
    from backend.models.deferred.latent_diffusion import LatentDiffusionRenderer
    from backend.models.deferred.renderer import DeferredRendererConfig
    from blender_addon.formats.expression import DEMO_LAYOUT

    base = build_base("sd21-base", sizes, device, dtype, tokenizer_folder, text_layers=1)
    scheduler = scheduler_from_config({**BASE_ARCHITECTURES["sd21-v"]["scheduler"], "_class_name": "DDPMScheduler"})
    channels = ChannelLayout(triplane_channels=triplane_channels or sizes.triplane_channels)
    config = DeferredRendererConfig(base="sd21-size-random", expression_names=DEMO_LAYOUT, channels=channels,
                                    triplane_resolution=64 if sizes.tiny else 512)
    with torch.device(device):
        renderer = LatentDiffusionRenderer(config, base.unet, base.vae, base.text_encoder, base.tokenizer, scheduler)
    return renderer.place(device, dtype).eval()


def parameter_bytes(*modules) -> int:
    return sum(p.numel() * p.element_size() for module in modules for p in module.parameters())
