"""Tiny random Stable Diffusion models in the real on-disk formats, for tests, CI and smoke runs.

``write_tiny_models(root)`` writes, in a few seconds on a CPU::

    root/tiny-sd/               diffusers pipeline folder (UNet, VAE, CLIP text encoder, tokenizer, scheduler)
    root/tiny-sd.safetensors   the same base model as one checkpoint in the original (LDM) layout
    root/tiny-controlnet-pose/  diffusers ControlNet folders sized for the base model
    root/tiny-controlnet-depth/
    root/tiny-controlnet-normal/
    root/tiny-controlnet-pose.safetensors  the pose ControlNet as one LDM-layout checkpoint
    root/tiny-style-lora.safetensors  a LoRA for the base UNet, in diffusers' LoRA file format

The tokenizer is written by the project, small on purpose (CLIP's real one, ``clip_tokenizer``, has
49 408 ids: a large embedding for a tiny model): every byte symbol, its end-of-word form, a handful
of merges and the two special tokens. The weights are
random, so images are noise, but every loading and sampling code path is the real one.
``variant="sd21"`` gives an SD 2.1-like model: linear attention projections and v-prediction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..formats.configs import config_to_dict

VARIANTS = ("sd15", "sd21")
_MERGES = (("t", "h"), ("th", "e</w>"), ("i", "n"), ("o", "n</w>"), ("e", "r"), ("a", "n"),
           ("v", "i"), ("vi", "e"), ("o", "n"), ("f", "r"), ("fr", "on"), ("s", "i"), ("b", "a"), ("ba", "c"), ("h", "a"))


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny models. Images are ``image_size`` pixels; latents are half that."""

    variant: str = "sd15"
    image_size: int = 32
    unet_channels: tuple[int, int] = (16, 32)
    cross_attention_dim: int = 32
    text_hidden_layers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")


@dataclass(frozen=True)
class TinyModelPaths:
    base: Path
    base_single_file: Path
    controlnets: dict[str, Path]
    """'pose' | 'depth' | 'normal' -> diffusers ControlNet folder."""
    lora: Path
    controlnet_single_file: Path
    """The pose ControlNet again, as one LDM-layout checkpoint (its config: controlnets['pose'])."""


def tiny_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary in CLIP's scheme: byte symbols, '</w>' forms, merges, specials."""
    symbols = list(byte_symbols())
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(pair) for pair in _MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocabulary: dict[str, int] = {}
    for token in tokens:
        vocabulary.setdefault(token, len(vocabulary))
    return vocabulary, list(_MERGES)


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for _, code in sorted(zip(printable, codes))]


def write_tiny_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt + tokenizer configs, loadable with CLIPTokenizer.from_pretrained."""
    from transformers import CLIPTokenizer

    vocabulary, merges = tiny_vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    CLIPTokenizer(vocab=vocabulary, merges=merges, model_max_length=77).save_pretrained(folder)


def build_tiny_base(spec: TinySpec, tokenizer_folder: Path):
    """(unet, vae, text_encoder, tokenizer, scheduler) with random weights seeded by ``spec.seed``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(spec.seed)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
    sd21 = spec.variant == "sd21"
    unet = UNet2DConditionModel(
        sample_size=spec.image_size // 2,
        block_out_channels=spec.unet_channels,
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=spec.cross_attention_dim,
        attention_head_dim=(2, 4) if sd21 else 4,
        use_linear_projection=sd21,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8, sample_size=spec.image_size,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=spec.cross_attention_dim, intermediate_size=2 * spec.cross_attention_dim,
        num_hidden_layers=spec.text_hidden_layers, num_attention_heads=4, max_position_embeddings=77,
        hidden_act="gelu" if sd21 else "quick_gelu", bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1, prediction_type="v_prediction" if sd21 else "epsilon",
    )
    return unet, vae, text_encoder, tokenizer, scheduler


def build_tiny_controlnet(unet, seed: int):
    """A ControlNet copied from ``unet`` whose zero-convolutions get small random weights, so that
    the condition image really changes the output (a fresh ControlNet would have no effect)."""
    import torch
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            block.weight.copy_(torch.randn(block.weight.shape, generator=generator) * 0.05)
    return controlnet


def write_tiny_lora(path: Path, unet, seed: int) -> Path:
    """A style LoRA for ``unet``'s attention projections in diffusers' LoRA file format. Its up
    projections get small random weights (a fresh LoRA starts at zero and would change nothing)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="tiny")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    layers = get_peft_model_state_dict(unet, adapter_name="tiny")
    unet.delete_adapters("tiny")
    StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=layers, weight_name=path.name, safe_serialization=True)
    return path


def write_tiny_models(root: str | Path, spec: TinySpec = TinySpec()) -> TinyModelPaths:
    """Write the tiny base model (folder and single file) and the three ControlNets under ``root``."""
    from diffusers import StableDiffusionPipeline

    from .single_file_export import write_single_file_checkpoint, write_single_file_controlnet

    root = Path(root)
    base = root / "tiny-sd"
    write_tiny_tokenizer(base / "tokenizer")
    unet, vae, text_encoder, tokenizer, scheduler = build_tiny_base(spec, base / "tokenizer")
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline.save_pretrained(base, safe_serialization=True)
    (base / "tiny_spec.json").write_text(json.dumps(config_to_dict(spec)), encoding="utf-8")
    single_file = write_single_file_checkpoint(root / "tiny-sd.safetensors", unet, vae, text_encoder)
    controlnets = {}
    for offset, kind in enumerate(("pose", "depth", "normal"), start=1):
        folder = root / f"tiny-controlnet-{kind}"
        controlnet = build_tiny_controlnet(unet, spec.seed + offset)
        controlnet.save_pretrained(folder, safe_serialization=True)
        controlnets[kind] = folder
        if kind == "pose":
            controlnet_single_file = write_single_file_controlnet(root / "tiny-controlnet-pose.safetensors", controlnet)
    lora = write_tiny_lora(root / "tiny-style-lora.safetensors", unet, spec.seed + 10)  # last: it wraps the UNet's layers
    return TinyModelPaths(base, single_file, controlnets, lora, controlnet_single_file)


def register_tiny_models(store, paths: TinyModelPaths, prefix: str = "tiny") -> dict[str, str]:
    """Register the tiny models in ``store`` (replacing same-named entries); returns role -> name."""
    names = {"base": f"{prefix}-sd", "base-single-file": f"{prefix}-sd-single"}
    store.add(paths.base, names["base"], "base", replace=True)
    store.add(paths.base_single_file, names["base-single-file"], "base", config=paths.base, replace=True)
    for kind, folder in paths.controlnets.items():
        names[f"controlnet-{kind}"] = f"{prefix}-controlnet-{kind}"
        store.add(folder, names[f"controlnet-{kind}"], f"controlnet-{kind}", replace=True)
    names["controlnet-pose-single-file"] = f"{prefix}-controlnet-pose-single"
    store.add(paths.controlnet_single_file, names["controlnet-pose-single-file"], "controlnet-pose",
              config=paths.controlnets["pose"], replace=True)
    names["lora"] = f"{prefix}-style-lora"
    store.add(paths.lora, names["lora"], "lora", replace=True)
    return names
