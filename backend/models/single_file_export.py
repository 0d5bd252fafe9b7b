"""Write a Stable Diffusion base model or a ControlNet as one ``.safetensors`` checkpoint in the original (LDM) layout.

This is the layout community checkpoints ship in and that diffusers' ``from_single_file`` reads
(``model.diffusion_model.*`` UNet, ``first_stage_model.*`` VAE, ``cond_stage_model.transformer.*``
CLIP text encoder; ``control_model.*`` for a ControlNet). The key renaming below is the inverse of diffusers' LDM -> diffusers
conversion for UNets made of resnet + transformer blocks (SD 1.x/2.x shapes). Its use here is the
tiny test checkpoints; round-trip tests check that ``from_single_file`` gives back the same weights.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from blender_addon.formats.files import atomic_write

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."
CONTROLNET_PREFIX = "control_model."

_UNET_RESNET_RENAMES = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                        ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_ATTENTION_RENAMES = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def write_single_file_checkpoint(path: str | Path, unet, vae, text_encoder) -> Path:
    """Save the three models' weights under their LDM names into one safetensors file (atomically)."""
    from safetensors.torch import save_file

    tensors = {}
    tensors.update(_renamed(unet.state_dict(), UNET_PREFIX, _unet_key_mapper(unet.config.layers_per_block, _blocks_with_attention(unet.config.up_block_types))))
    tensors.update(_renamed(vae.state_dict(), VAE_PREFIX, _vae_key_mapper(len(vae.config.up_block_types))))
    tensors.update(_renamed(text_encoder.state_dict(), TEXT_ENCODER_PREFIX, _text_encoder_key))
    for key, value in list(tensors.items()):
        if key.startswith(VAE_PREFIX) and ".mid.attn_1." in key and value.dim() == 2:
            tensors[key] = value[:, :, None, None]  # LDM's VAE attention uses 1x1 convolutions
    contiguous = {key: value.detach().contiguous() for key, value in tensors.items()}
    return atomic_write(path, lambda temp: save_file(contiguous, str(temp)))


def write_single_file_controlnet(path: str | Path, controlnet) -> Path:
    """Save a ControlNet under its LDM names (``control_model.*``) into one safetensors file (atomically)."""
    from safetensors.torch import save_file

    mapper = _controlnet_key_mapper(controlnet.config.layers_per_block)
    tensors = {CONTROLNET_PREFIX + mapper(key): value.detach().contiguous() for key, value in controlnet.state_dict().items()}
    return atomic_write(path, lambda temp: save_file(tensors, str(temp)))


def _controlnet_key_mapper(layers_per_block: int) -> Callable[[str], str]:
    """ControlNet names: the UNet encoder's, plus the hint encoder, zero convolutions and mid output."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    direct = DIFFUSERS_TO_LDM_MAPPING["controlnet"]["layers"]
    encoder = _unet_key_mapper(layers_per_block, set())

    def mapper(key: str) -> str:
        if key in direct:
            return direct[key]
        if match := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", key):
            return f"input_hint_block.{2 * (int(match[1]) + 1)}.{match[2]}"
        if match := re.match(r"controlnet_down_blocks\.(\d+)\.(.+)", key):
            return f"zero_convs.{match[1]}.0.{match[2]}"
        if match := re.match(r"controlnet_mid_block\.(.+)", key):
            return f"middle_block_out.0.{match[1]}"
        return encoder(key)

    return mapper


def _text_encoder_key(key: str) -> str:
    """LDM checkpoints nest CLIP's weights under ``text_model.``; transformers >= 5.6 no longer does."""
    return key if key.startswith("text_model.") else "text_model." + key


def _blocks_with_attention(block_types) -> set[int]:
    return {index for index, name in enumerate(block_types) if "CrossAttn" in name}


def _renamed(state_dict: dict, prefix: str, mapper: Callable[[str], str]) -> dict:
    return {prefix + mapper(key): value for key, value in state_dict.items()}


def _unet_key_mapper(layers_per_block: int, up_blocks_with_attention: set[int]) -> Callable[[str], str]:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    direct = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    stride = layers_per_block + 1

    def rename_resnet(rest: str) -> str:
        for new, old in _UNET_RESNET_RENAMES:
            rest = re.sub(rf"^{re.escape(new)}\b", old, rest)
        return rest

    def mapper(key: str) -> str:
        if key in direct:
            return direct[key]
        if match := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(match[1]), match[2], int(match[3]), match[4]
            index = 1 + block * stride + layer
            return f"input_blocks.{index}.0.{rename_resnet(rest)}" if kind == "resnets" else f"input_blocks.{index}.1.{rest}"
        if match := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            return f"input_blocks.{1 + int(match[1]) * stride + layers_per_block}.0.op.{match[2]}"
        if match := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key):
            kind, layer, rest = match[1], int(match[2]), match[3]
            return f"middle_block.{2 * layer}.{rename_resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
        if match := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(match[1]), match[2], int(match[3]), match[4]
            index = block * stride + layer
            return f"output_blocks.{index}.0.{rename_resnet(rest)}" if kind == "resnets" else f"output_blocks.{index}.1.{rest}"
        raise KeyError(f"no LDM name for UNet weight {key!r}")

    def mapper_with_upsamplers(key: str) -> str:
        if match := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            block = int(match[1])
            slot = 2 if block in up_blocks_with_attention else 1
            return f"output_blocks.{block * stride + layers_per_block}.{slot}.conv.{match[2]}"
        return mapper(key)

    return mapper_with_upsamplers


def _vae_key_mapper(block_count: int) -> Callable[[str], str]:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    direct = DIFFUSERS_TO_LDM_MAPPING["vae"]

    def rename_attention(rest: str) -> str:
        for new, old in _VAE_ATTENTION_RENAMES:
            rest = re.sub(rf"^{re.escape(new)}\b", old, rest)
        return rest

    def mapper(key: str) -> str:
        if key in direct:
            return direct[key]
        if match := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            return f"{match[1]}.mid.block_{int(match[2]) + 1}.{match[3].replace('conv_shortcut', 'nin_shortcut')}"
        if match := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
            return f"{match[1]}.mid.attn_1.{rename_attention(match[2])}"
        if match := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(.+)", key):
            return f"encoder.down.{match[1]}.block.{match[2].replace('conv_shortcut', 'nin_shortcut')}"
        if match := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            return f"encoder.down.{match[1]}.downsample.conv.{match[2]}"
        if match := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(.+)", key):
            return f"decoder.up.{block_count - 1 - int(match[1])}.block.{match[2].replace('conv_shortcut', 'nin_shortcut')}"
        if match := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            return f"decoder.up.{block_count - 1 - int(match[1])}.upsample.conv.{match[2]}"
        raise KeyError(f"no LDM name for VAE weight {key!r}")

    return mapper
