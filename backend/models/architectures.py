"""The architectures a single-file checkpoint may have, shipped with the project, and telling them apart.

A ``.safetensors`` checkpoint (``v1-5-pruned-emaonly.safetensors``, a ControlNet ``.safetensors``)
holds weights only; the diffusers configs that say how to build the models around them are here,
as facts from the public configs of SD 1.5, SD 2.1 (512 base and 768 v-prediction) and the SD 1.5
ControlNets. Nothing is downloaded.

The architecture is told from the tensor names and shapes in the file's header: the UNet's
cross-attention width (768 for SD 1.x, 1024 for SD 2.x) and the text encoder's layout (CLIP's
``cond_stage_model.transformer.*`` vs OpenCLIP's ``cond_stage_model.model.*``); SDXL, Flux, SD 3
and others are recognised with diffusers' ``infer_diffusers_model_type`` and refused. SD 2.x 512
and 768 checkpoints have the same tensors: the ``.yaml`` A1111 keeps beside the file tells them apart
(``parameterization: "v"`` in ``v2-inference-v.yaml``, absent in the 512 base's ``v2-inference.yaml``),
else the file name (``768``/``-v`` vs ``base``/``512``), and without either it is the 768 v-prediction
model, as diffusers assumes. SD 1.5 and SD 2.1 ControlNets have shipped configs too.

Layer widths are read from the tensor shapes over the shipped structure (number of levels, layers
per level, attention heads, activation): for a real checkpoint they are the shipped widths, and a
smaller model of the same structure (the tests' random weights) loads as what it is.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import InvalidInput

Shapes = Mapping[str, Sequence[int]]

_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
              "clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1}
_VAE = {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4, "in_channels": 3,
        "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 512,
        "scaling_factor": 0.18215}
_UNET = {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
         "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
         "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], "downsample_padding": 1,
         "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
         "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
         "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, "use_linear_projection": False,
         "upcast_attention": False}
_CLIP_L = {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "hidden_act": "quick_gelu", "hidden_size": 768,
           "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12, "max_position_embeddings": 77,
           "vocab_size": 49408, "projection_dim": 768, "layer_norm_eps": 1e-05, "bos_token_id": 49406,
           "eos_token_id": 49407, "pad_token_id": 49407}
_OPEN_CLIP_H = {**_CLIP_L, "hidden_act": "gelu", "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                "num_hidden_layers": 23, "projection_dim": 512, "pad_token_id": 0}
_SD2_UNET = {**_UNET, "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": True}

BASE_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sd15": {"unet": _UNET, "vae": _VAE, "text_encoder": _CLIP_L, "pad_token": "<|endoftext|>",
             "scheduler": {"_class_name": "PNDMScheduler", **_SCHEDULER, "prediction_type": "epsilon"}},
    "sd21-base": {"unet": _SD2_UNET, "vae": _VAE, "text_encoder": _OPEN_CLIP_H, "pad_token": "!",
                  "scheduler": {"_class_name": "PNDMScheduler", **_SCHEDULER, "prediction_type": "epsilon"}},
    "sd21-v": {"unet": {**_SD2_UNET, "sample_size": 96, "upcast_attention": True}, "vae": {**_VAE, "sample_size": 768},
               "text_encoder": _OPEN_CLIP_H, "pad_token": "!",
               "scheduler": {"_class_name": "DDIMScheduler", **_SCHEDULER, "prediction_type": "v_prediction"}},
}


def _controlnet_of(unet: dict[str, Any]) -> dict[str, Any]:
    """A ControlNet's config: its base UNet's encoder half and the condition image's encoder."""
    return {"_class_name": "ControlNetModel", **{k: v for k, v in unet.items() if k not in (
        "_class_name", "out_channels", "sample_size", "up_block_types", "center_input_sample")},
        "conditioning_embedding_out_channels": [16, 32, 96, 256], "controlnet_conditioning_channel_order": "rgb"}


CONTROLNET_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "controlnet-sd15": _controlnet_of(_UNET),
    "controlnet-sd21": _controlnet_of(_SD2_UNET),
}
ARCHITECTURES = (*BASE_ARCHITECTURES, *CONTROLNET_ARCHITECTURES)

_UNET_PREFIX = "model.diffusion_model."
_CROSS_ATTENTION_KEY = "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_CLIP_PREFIX = "cond_stage_model.transformer."
_OPEN_CLIP_PREFIX = "cond_stage_model.model."
_UNSUPPORTED_FAMILIES = {"xl": "SDXL", "playground": "Playground v2.5", "sd3": "Stable Diffusion 3", "sd35": "Stable Diffusion 3.5",
                         "flux": "Flux", "chroma": "Chroma", "cascade": "Stable Cascade", "upscale": "the SD x4 upscaler",
                         "inpaint": "an inpainting model", "animatediff": "AnimateDiff", "hunyuan": "HunyuanVideo",
                         "ltx": "LTX-Video", "auraflow": "AuraFlow", "lumina": "Lumina", "wan": "Wan", "sana": "Sana"}
SUPPORTED_HINT = "use an SD 1.5 or SD 2.1 class checkpoint (and SD 1.5 ControlNets); SDXL, Flux and SD 3 are not supported"

CONFIG_HINT = "pass --config DIR: a local diffusers folder of the same architecture (its configs and tokenizer; no weights needed)"


class _Shape:
    """What diffusers' model-type inference looks at: a tensor's shape, here from the file header."""

    def __init__(self, shape: Sequence[int]) -> None:
        self.shape = tuple(shape)


def diffusers_model_type(shapes: Shapes) -> str:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    return infer_diffusers_model_type({name: _Shape(shape) for name, shape in shapes.items()})


def refuse_unsupported_family(shapes: Shapes, file_name: str) -> None:
    model_type = diffusers_model_type(shapes)
    for word, family in _UNSUPPORTED_FAMILIES.items():
        if word in model_type:
            raise InvalidInput(f"{file_name} is {family} ({model_type}), which Avatar Foundry cannot run", SUPPORTED_HINT,
                               field="path")


def check_structure(architecture: str, shapes: Shapes) -> None:
    """Refuse a checkpoint whose tensors do not fit the shipped structure (before anything loads)."""
    if architecture in BASE_ARCHITECTURES:
        base_configs(architecture, shapes)
    else:
        controlnet_config(shapes, architecture)


_PARAMETERIZATION = {"v": "v_prediction", "eps": "epsilon", "x0": "sample"}


def a1111_prediction_type(checkpoint: Path) -> str | None:
    """The prediction type the ``.yaml`` A1111 keeps beside ``checkpoint`` says (``model.params.parameterization``,
    'eps' when absent), or None without a readable one."""
    import yaml

    for beside in (checkpoint.with_suffix(".yaml"), checkpoint.with_suffix(".yml")):
        if beside.is_file():
            try:
                document = yaml.safe_load(beside.read_text(encoding="utf-8"))
                params = document["model"]["params"]
            except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
                return None
            return _PARAMETERIZATION.get(str(params.get("parameterization", "eps")), None) if isinstance(params, dict) else None
    return None


def infer_base_architecture(shapes: Shapes, file_name: str, prediction_type: str | None = None) -> str:
    """'sd15' | 'sd21-base' | 'sd21-v' for an LDM-layout base checkpoint; refuses anything else by name.
    ``prediction_type`` (from the A1111 ``.yaml`` beside the file) decides between SD 2.x 512 and 768-v."""
    refuse_unsupported_family(shapes, file_name)
    if not any(name.startswith(_UNET_PREFIX) for name in shapes):
        raise InvalidInput(f"{file_name} holds no Stable Diffusion UNet (model.diffusion_model.*)",
                           "register a base checkpoint with --role base, or pick the role the file is", field="path")
    open_clip = any(name.startswith(_OPEN_CLIP_PREFIX) for name in shapes)
    width = shapes.get(_UNET_PREFIX + _CROSS_ATTENTION_KEY, (0, 0))[-1]
    if not open_clip and any(name.startswith(_CLIP_PREFIX) for name in shapes) and width != 1024:
        return "sd15"
    if open_clip or width == 1024:
        if prediction_type is not None:
            return "sd21-v" if prediction_type == "v_prediction" else "sd21-base"
        words = set(re.split(r"[^a-z0-9]+", file_name.lower()))
        return "sd21-base" if words & {"base", "512"} and not words & {"768", "v"} else "sd21-v"
    raise InvalidInput(f"{file_name} has no text encoder weights (cond_stage_model.*) of SD 1.x or SD 2.x", SUPPORTED_HINT,
                       field="path")


def controlnet_layout(shapes: Shapes) -> str | None:
    """'ldm' (control_model.*), 'ldm-unprefixed' or 'diffusers' for a ControlNet file; None if it is none."""
    if "control_model.time_embed.0.weight" in shapes:
        return "ldm"
    if "time_embed.0.weight" in shapes and "input_hint_block.0.weight" in shapes:
        return "ldm-unprefixed"
    if "controlnet_cond_embedding.conv_in.weight" in shapes:
        return "diffusers"
    return None


def infer_controlnet_architecture(shapes: Shapes, file_name: str) -> str:
    refuse_unsupported_family(shapes, file_name)
    layout = controlnet_layout(shapes)
    if layout is None:
        raise InvalidInput(f"{file_name} is not a ControlNet (no control_model.*, input_hint_block or controlnet_cond_embedding weights)",
                           "register it with the role it has", field="path")
    if "add_embedding.linear_1.weight" in shapes:
        raise InvalidInput(f"{file_name} is an SDXL ControlNet, which Avatar Foundry cannot run", SUPPORTED_HINT, field="path")
    return "controlnet-sd21" if _is_sd2_controlnet(shapes, layout) else "controlnet-sd15"


def _is_sd2_controlnet(shapes: Shapes, layout: str | None) -> bool:
    """SD 2.x attends to 1024-wide text and projects into its transformers with linear layers (SD 1.5: 1x1 convolutions)."""
    if layout == "diffusers":
        width = shapes.get("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", (0, 0))[-1]
        projection = shapes.get("down_blocks.0.attentions.0.proj_in.weight", ())
    else:
        ldm = _ldm_controlnet_shapes(shapes, layout)
        width = ldm.get(_CROSS_ATTENTION_KEY, (0, 0))[-1]
        projection = ldm.get("input_blocks.1.1.proj_in.weight", ())
    return int(width) == 1024 or len(projection) == 2


def _ldm_controlnet_shapes(shapes: Shapes, layout: str | None) -> dict[str, Sequence[int]]:
    prefix = "control_model." if layout == "ldm" else ""
    return {name[len(prefix):]: shape for name, shape in shapes.items() if name.startswith(prefix)}


def _level_widths(shapes: Shapes, prefix: str, levels: int, layers_per_block: int) -> list[int]:
    """Each UNet level's width: the output channels of its first resnet (LDM names)."""
    return [int(shapes[f"{prefix}input_blocks.{1 + level * (layers_per_block + 1)}.0.out_layers.3.weight"][0]) for level in range(levels)]


def _unet_sizes(config: dict, shapes: Shapes, prefix: str) -> dict:
    levels, layers = len(config["block_out_channels"]), config["layers_per_block"]
    blocks = {int(m[1]) for name in shapes if (m := re.match(re.escape(prefix) + r"input_blocks\.(\d+)\.", name))}
    if len(blocks) != levels * (layers + 1):
        raise KeyError(f"{prefix}input_blocks.* for {levels} levels of {layers} layers (the file has {len(blocks)} input blocks)")
    sizes = {"block_out_channels": _level_widths(shapes, prefix, len(config["block_out_channels"]), config["layers_per_block"]),
             "in_channels": int(shapes[prefix + "input_blocks.0.0.weight"][1])}
    if prefix + _CROSS_ATTENTION_KEY in shapes:
        sizes["cross_attention_dim"] = int(shapes[prefix + _CROSS_ATTENTION_KEY][-1])
    return sizes


def vae_sizes(config: dict, shapes: Shapes, prefix: str = "first_stage_model.") -> dict:
    """A VAE's level widths and latent channels from its LDM tensor names (``prefix``: '' for a VAE file)."""
    widths = [int(shapes[f"{prefix}encoder.down.{level}.block.{config['layers_per_block'] - 1}.conv2.weight"][0])
              for level in range(len(config["block_out_channels"]))]
    return {"block_out_channels": widths, "latent_channels": int(shapes[f"{prefix}quant_conv.weight"][0]) // 2}


def _text_encoder_sizes(shapes: Shapes) -> dict:
    if any(name.startswith(_OPEN_CLIP_PREFIX) for name in shapes):
        vocabulary, hidden = shapes[_OPEN_CLIP_PREFIX + "token_embedding.weight"]
        layers = {int(m[1]) for name in shapes if (m := re.match(re.escape(_OPEN_CLIP_PREFIX) + r"transformer\.resblocks\.(\d+)\.", name))}
        intermediate = shapes[_OPEN_CLIP_PREFIX + "transformer.resblocks.0.mlp.c_fc.weight"][0]
        positions = shapes[_OPEN_CLIP_PREFIX + "positional_embedding"][0]
        # diffusers' OpenCLIP conversion keeps all but the last block (SD 2 uses the penultimate layer)
        return {"vocab_size": int(vocabulary), "hidden_size": int(hidden), "intermediate_size": int(intermediate),
                "num_hidden_layers": len(layers) - 1, "max_position_embeddings": int(positions)}
    prefix = _CLIP_PREFIX + "text_model."
    vocabulary, hidden = shapes[prefix + "embeddings.token_embedding.weight"]
    layers = {int(m[1]) for name in shapes if (m := re.match(re.escape(prefix) + r"encoder\.layers\.(\d+)\.", name))}
    return {"vocab_size": int(vocabulary), "hidden_size": int(hidden), "num_hidden_layers": len(layers),
            "intermediate_size": int(shapes[prefix + "encoder.layers.0.mlp.fc1.weight"][0]),
            "max_position_embeddings": int(shapes[prefix + "embeddings.position_embedding.weight"][0])}


def base_configs(architecture: str, shapes: Shapes) -> dict[str, dict]:
    """The shipped component configs of ``architecture`` with the widths the file's tensors have."""
    shipped = copy.deepcopy(BASE_ARCHITECTURES[architecture])
    try:
        shipped["unet"].update(_unet_sizes(shipped["unet"], shapes, _UNET_PREFIX))
        if any(name.startswith("first_stage_model.") for name in shapes):  # else a VAE chosen per job replaces it
            shipped["vae"].update(vae_sizes(shipped["vae"], shapes))
        shipped["text_encoder"].update(_text_encoder_sizes(shapes))
    except KeyError as error:
        raise InvalidInput(f"the checkpoint is {architecture}-like but does not have its structure (expected {error})",
                           CONFIG_HINT, field="config") from None
    return shipped


def controlnet_config(shapes: Shapes, architecture: str = "controlnet-sd15") -> dict:
    """The shipped ControlNet config of ``architecture`` with the widths of the file's tensors (any of the three layouts)."""
    config = copy.deepcopy(CONTROLNET_ARCHITECTURES[architecture])
    layout = controlnet_layout(shapes)
    try:
        if layout == "diffusers":
            levels = len(config["block_out_channels"])
            config["block_out_channels"] = [int(shapes[f"down_blocks.{level}.resnets.0.conv2.weight"][0]) for level in range(levels)]
            config["in_channels"] = int(shapes["conv_in.weight"][1])
            config["cross_attention_dim"] = int(shapes["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"][-1])
            hint = [int(shapes["controlnet_cond_embedding.conv_in.weight"][0])]
            hint += [int(shapes[f"controlnet_cond_embedding.blocks.{2 * i + 1}.weight"][0]) for i in range(len(config["conditioning_embedding_out_channels"]) - 1)]
        else:
            ldm = _ldm_controlnet_shapes(shapes, layout)
            config.update(_unet_sizes(config, ldm, ""))
            indices = sorted({int(m[1]) for name in ldm if (m := re.match(r"input_hint_block\.(\d+)\.weight", name))})
            hint = [int(ldm[f"input_hint_block.{indices[0]}.weight"][0])]
            hint += [int(ldm[f"input_hint_block.{index}.weight"][0]) for index in indices[2:-1:2]]
    except KeyError as error:
        raise InvalidInput(f"the ControlNet does not have the structure of an {architecture} ControlNet (expected {error})",
                           CONFIG_HINT, field="config") from None
    config["conditioning_embedding_out_channels"] = hint
    return config


def write_base_config_folder(folder: Path, configs: dict[str, dict]) -> Path:
    """A diffusers pipeline folder of configs only (no weights, no tokenizer) for ``from_single_file``."""
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", configs["scheduler"]["_class_name"]],
             "safety_checker": [None, None], "feature_extractor": [None, None], "requires_safety_checker": False}
    _write_json(folder / "model_index.json", index)
    _write_json(folder / "unet" / "config.json", configs["unet"])
    _write_json(folder / "vae" / "config.json", configs["vae"])
    _write_json(folder / "text_encoder" / "config.json", configs["text_encoder"])
    _write_json(folder / "scheduler" / "scheduler_config.json", configs["scheduler"])
    return folder


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
