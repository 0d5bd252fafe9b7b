"""A separate VAE, chosen per job in place of the base model's own.

Artists keep one for sharper decoding (``vae-ft-mse-840000-ema-pruned.safetensors`` in A1111's
``models/VAE``, LDM key names such as ``encoder.down.0.block.0.conv1.weight``, sometimes under
``first_stage_model.``; or the diffusers folder ``sd-vae-ft-mse``), and some checkpoints are
saved without VAE weights and need one. SD 1.x and SD 2.x share the VAE's structure (4 latent
channels); the VAEs of SDXL (same tensors, another latent scale), SD 3 and Flux (16 channels) are refused.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from .store import UNSUPPORTED_HINT, ModelEntry, read_json_object, tensor_shapes

LDM_VAE_PREFIX = "first_stage_model."


def has_vae_weights(shapes) -> bool:
    """A base checkpoint that holds its VAE (``first_stage_model.*``); some are saved without it."""
    return any(name.startswith(LDM_VAE_PREFIX) for name in shapes)


def check_vae_file(path: Path) -> None:
    from .file_kinds import check_kind_fits_role, weights_kind

    shapes = tensor_shapes(path)
    check_kind_fits_role(path, "vae", weights_kind(shapes))
    prefix = LDM_VAE_PREFIX if LDM_VAE_PREFIX + "quant_conv.weight" in shapes else ""
    _check_latent_channels(path.name, int(shapes[prefix + "quant_conv.weight"][0]) // 2)
    if set(re.split(r"[^a-z0-9]+", path.name.lower())) & {"sdxl", "xl"}:
        raise InvalidInput(f"{path.name} is an SDXL VAE (its latents are scaled for SDXL)", UNSUPPORTED_HINT, field="path")


def check_vae_folder(folder: Path) -> None:
    config = read_json_object(folder / "config.json")
    class_name = config.get("_class_name")
    if class_name != "AutoencoderKL":
        raise InvalidInput(f"{folder.name} is a {class_name or 'model of unknown class'}, not an AutoencoderKL VAE",
                           "use a Stable Diffusion VAE folder (e.g. sd-vae-ft-mse) or its .safetensors file", field="path")
    _check_latent_channels(folder.name, int(config.get("latent_channels", 4)))


def _check_latent_channels(name: str, channels: int) -> None:
    if channels != 4:
        raise InvalidInput(f"{name} is a VAE with {channels} latent channels (SD 3 / Flux), not one of SD 1.x/2.x (4 channels)",
                           UNSUPPORTED_HINT, field="path")


def vae_config(shapes) -> dict:
    """The shipped SD VAE config with the widths of the file's tensors (LDM names, with or without prefix)."""
    from .architectures import BASE_ARCHITECTURES, vae_sizes

    config = dict(BASE_ARCHITECTURES["sd15"]["vae"])
    prefix = LDM_VAE_PREFIX if any(name.startswith(LDM_VAE_PREFIX) for name in shapes) else ""
    config.update(vae_sizes(config, shapes, prefix))
    return config


def load_vae(entry: ModelEntry, dtype: Any) -> Any:
    """The VAE of a ``vae`` store entry, offline, in ``dtype`` on the CPU."""
    from diffusers import AutoencoderKL

    from .diffusion_loading import loadable_folder

    if entry.format == "diffusers":
        with loadable_folder(entry.path) as (source, variant):
            return AutoencoderKL.from_pretrained(source, local_files_only=True, dtype=dtype, use_safetensors=True, variant=variant)
    if entry.config is not None:
        return AutoencoderKL.from_single_file(str(entry.path), config=str(entry.config), local_files_only=True, dtype=dtype)
    with tempfile.TemporaryDirectory(prefix="avatar-foundry-config-") as folder:
        (Path(folder) / "config.json").write_text(json.dumps(vae_config(tensor_shapes(entry.path))), encoding="utf-8")
        return AutoencoderKL.from_single_file(str(entry.path), config=folder, local_files_only=True, dtype=dtype)
