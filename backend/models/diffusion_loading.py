"""Load Stable Diffusion components and ControlNets from model-store entries, offline only.

Every call passes ``local_files_only=True`` (and ``backend`` sets HF_HUB_OFFLINE at import), so a missing file is an
error naming the path and never a download. Shared by the multi-view generator and the deferred
renderer: both take a :class:`BaseComponents` and assemble what they need from it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import InvalidInput, ModelMissing
from .store import ModelEntry, shard_index_files, tensor_shapes, validate_entry


@dataclass
class BaseComponents:
    """The parts of a Stable Diffusion 1.x/2.x base model."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def default_image_size(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.config.get("prediction_type", "epsilon"))


def load_base_components(entry: ModelEntry, device: Any = None, dtype: Any = None, vae: ModelEntry | None = None) -> BaseComponents:
    """Load a base model's UNet, VAE, text encoder, tokenizer and scheduler from a store entry.

    Models are put in eval mode without gradients and moved to ``device`` in ``dtype`` (float32
    if None). A diffusers folder loads component by component; a single-file checkpoint loads
    through ``StableDiffusionPipeline.from_single_file`` with the entry's local config folder.
    ``vae``, a ``vae`` store entry, replaces the model's own VAE (and is required when it has none).
    """
    import torch

    from .vae_files import load_vae

    if entry.role != "base":
        raise InvalidInput(f"model {entry.name!r} has role {entry.role!r}, not 'base'", "pick a base model (models list)", field="base")
    validate_entry(entry)
    require_vae_if_missing(entry, vae)
    dtype = dtype or torch.float32
    try:
        own_vae = load_vae(vae, dtype) if vae is not None else None
        components = _load_single_file_base(entry, dtype, own_vae) if entry.format == "single-file" else _load_folder_base(entry, dtype, own_vae)
    except (OSError, ValueError, KeyError) as error:
        raise ModelMissing(f"model {entry.name!r} at {entry.path} could not be loaded: {error}",
                           "check that the files are complete and of a Stable Diffusion 1.x/2.x model", field="base") from None
    for module in (components.unet, components.vae, components.text_encoder):
        module.to(device=device or "cpu").eval().requires_grad_(False)
    return components


def _load_folder_base(entry: ModelEntry, dtype: Any, vae: Any = None) -> BaseComponents:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = entry.path
    options = dict(local_files_only=True, dtype=dtype, use_safetensors=True)

    def load(model_class: Any, component: str) -> Any:
        with loadable_folder(folder / component) as (source, variant):
            return model_class.from_pretrained(source, variant=variant, **options)

    return BaseComponents(
        unet=load(UNet2DConditionModel, "unet"),
        vae=vae if vae is not None else load(AutoencoderKL, "vae"),
        text_encoder=load(CLIPTextModel, "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True),
        scheduler=load_scheduler(folder),
    )


_VARIANT_INDEX = re.compile(r"\.safetensors\.index\.([A-Za-z0-9_]+)\.json$")
_OTHER_VARIANT_INDEX = re.compile(r"^(.+)\.([A-Za-z0-9_]+)\.safetensors\.index\.json$")


def weights_variant(folder: Path) -> str | None:
    """The weights' variant ('fp16' for a Hub ``variant="fp16"`` download: ``*.fp16.safetensors``, or shards
    indexed by ``*.safetensors.index.fp16.json`` or ``*.fp16.safetensors.index.json``), None for plain weights."""
    for index in shard_index_files(folder):
        match = _VARIANT_INDEX.search(index.name) or _OTHER_VARIANT_INDEX.match(index.name)
        return match[match.lastindex] if match else None
    weights = [path.name for path in folder.glob("*.safetensors")]
    return "fp16" if weights and all(name.endswith(".fp16.safetensors") for name in weights) else None


@contextmanager
def loadable_folder(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """(folder, variant) to give ``from_pretrained``: the folder itself, or, for shards indexed under a name
    diffusers and transformers do not read (``x.fp16.safetensors.index.json``), a temporary folder that
    links the config and shards and holds the index under the name they read (``x.safetensors.index.fp16.json``)."""
    other = [match for index in shard_index_files(folder) if (match := _OTHER_VARIANT_INDEX.match(index.name))]
    if not other:
        yield folder, weights_variant(folder)
        return
    stem, variant = other[0][1], other[0][2]
    index_file = folder / other[0][0]
    with tempfile.TemporaryDirectory(prefix="avatar-foundry-shards-") as temp:
        view = Path(temp)
        shutil.copy(folder / "config.json", view / "config.json")
        for shard in sorted(set(json.loads(index_file.read_text(encoding="utf-8"))["weight_map"].values())):
            _link(folder / shard, view / shard)
        shutil.copy(index_file, view / f"{stem}.safetensors.index.{variant}.json")
        yield view, variant


def _link(source: Path, link: Path) -> None:
    """A symbolic link, else a hard link (Windows without the symlink privilege); never a copy of gigabytes."""
    try:
        os.symlink(source.resolve(), link)
    except OSError:
        try:
            os.link(source.resolve(), link)
        except OSError as error:
            raise InvalidInput(f"cannot link the shards of {source.parent} into a temporary folder ({error})",
                               f"rename the shard index to the name diffusers reads ({link.parent.name} is temporary)", field="path") from None


def require_vae_if_missing(base: ModelEntry, vae: ModelEntry | None) -> None:
    """A single-file checkpoint saved without VAE weights paints only with a VAE chosen for the job."""
    from .vae_files import has_vae_weights

    if vae is None and base.format == "single-file" and base.config is None and not has_vae_weights(tensor_shapes(base.path)):
        raise InvalidInput(f"base model {base.name!r} ({base.path.name}) holds no VAE weights (first_stage_model.*): it needs a separate VAE",
                           "register one (e.g. vae-ft-mse-840000-ema-pruned.safetensors) with 'avatar-foundry models add FILE --as NAME "
                           "--role vae' and choose it with --vae NAME (job parameter 'vae')", field="vae")


def _load_single_file_base(entry: ModelEntry, dtype: Any, vae: Any = None) -> BaseComponents:
    """With ``config``: that local diffusers folder; otherwise the shipped architecture's configs,
    sized from the file, and the CLIP tokenizer built from the installed vocabulary."""
    from diffusers import StableDiffusionPipeline

    from .architectures import BASE_ARCHITECTURES, base_configs, write_base_config_folder
    from .clip_tokenizer import clip_tokenizer

    options = dict(local_files_only=True, dtype=dtype, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if vae is not None:
        options["vae"] = vae
    shapes = tensor_shapes(entry.path)
    if has_ema_weights(shapes):
        options["extract_ema"] = True
    if entry.config is not None:
        pipeline = StableDiffusionPipeline.from_single_file(str(entry.path), config=str(entry.config), **options)
        scheduler = load_scheduler(entry.config)
    else:
        architecture = shipped_architecture(entry)
        configs = base_configs(architecture, shapes)
        tokenizer = clip_tokenizer(BASE_ARCHITECTURES[architecture]["pad_token"])
        with tempfile.TemporaryDirectory(prefix="avatar-foundry-config-") as folder:
            write_base_config_folder(Path(folder), configs)
            pipeline = StableDiffusionPipeline.from_single_file(str(entry.path), config=folder, tokenizer=tokenizer, **options)
            scheduler = load_scheduler(Path(folder))
    return BaseComponents(pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.tokenizer, scheduler)


def shipped_architecture(entry: ModelEntry) -> str:
    """The entry's recorded architecture, or (a registry written before it was recorded) the one its file has."""
    from .store import infer_single_file_architecture

    return entry.architecture or infer_single_file_architecture(entry.path, entry.role)


def has_ema_weights(shapes) -> bool:
    """A training checkpoint (e.g. ``v1-5-pruned.safetensors``) also holds EMA weights, the better ones to paint with."""
    return sum(name.startswith("model_ema.") for name in shapes) > 100


def load_scheduler(folder, class_name: str | None = None) -> Any:
    """The scheduler saved in ``folder/scheduler``, optionally converted to another diffusers scheduler class
    (e.g. 'UniPCMultistepScheduler' for good images in fewer steps), keeping the noise schedule."""
    config_path = folder / "scheduler" / "scheduler_config.json"
    return scheduler_from_config(json.loads(config_path.read_text(encoding="utf-8")), class_name)


def load_base_scheduler(entry: ModelEntry, class_name: str | None = None) -> Any:
    """A base model's scheduler, without loading its weights: from its folder, its config folder, or
    (a single file without one) its shipped architecture."""
    from .architectures import BASE_ARCHITECTURES

    if entry.format == "single-file" and entry.config is None:
        return scheduler_from_config(BASE_ARCHITECTURES[shipped_architecture(entry)]["scheduler"], class_name)
    return load_scheduler(entry.config if entry.format == "single-file" else entry.path, class_name)


def scheduler_from_config(config: dict, class_name: str | None = None) -> Any:
    import diffusers

    name = class_name or config.get("_class_name", "DDIMScheduler")
    scheduler_class = getattr(diffusers, name, None)
    if scheduler_class is None or not name.endswith("Scheduler"):
        raise InvalidInput(f"unknown scheduler {name!r}", "use a diffusers scheduler class name such as DDIMScheduler or UniPCMultistepScheduler", field="scheduler")
    return scheduler_class.from_config(config)


def load_controlnet(entry: ModelEntry, device: Any = None, dtype: Any = None, base: BaseComponents | None = None) -> Any:
    """Load a ControlNet from a store entry; with ``base`` given, refuse one built for another model size."""
    import torch
    from diffusers import ControlNetModel

    if not entry.role.startswith("controlnet-"):
        raise InvalidInput(f"model {entry.name!r} has role {entry.role!r}, not a ControlNet", "pick a model registered with --role controlnet-pose/depth/normal", field="controlnet")
    validate_entry(entry)
    dtype = dtype or torch.float32
    try:
        if entry.format == "single-file":
            controlnet = _load_single_file_controlnet(entry, dtype)
        else:
            with loadable_folder(entry.path) as (source, variant):
                controlnet = ControlNetModel.from_pretrained(source, local_files_only=True, dtype=dtype, use_safetensors=True, variant=variant)
    except (OSError, ValueError, KeyError) as error:
        raise ModelMissing(f"ControlNet {entry.name!r} at {entry.path} could not be loaded: {error}", "check that its files are complete", field="controlnet") from None
    if base is not None:
        check_controlnet_matches(entry.name, controlnet, base)
    return controlnet.to(device=device or "cpu").eval().requires_grad_(False)


def _load_single_file_controlnet(entry: ModelEntry, dtype: Any) -> Any:
    """Any of the three single-file layouts; the shipped SD 1.5 ControlNet config unless ``config`` is given."""
    from diffusers import ControlNetModel

    from .architectures import controlnet_config

    if entry.config is not None:
        return ControlNetModel.from_single_file(str(entry.path), config=str(entry.config), local_files_only=True, dtype=dtype)
    config = controlnet_config(tensor_shapes(entry.path), shipped_architecture(entry))
    with tempfile.TemporaryDirectory(prefix="avatar-foundry-config-") as folder:
        (Path(folder) / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return ControlNetModel.from_single_file(str(entry.path), config=folder, local_files_only=True, dtype=dtype)


def check_controlnet_matches(name: str, controlnet: Any, base: BaseComponents) -> None:
    """A ControlNet adds its residuals to the UNet's blocks: channel widths and text size must agree."""
    mismatches = [
        f"{key} {controlnet.config[key]} vs {base.unet.config[key]}"
        for key in ("block_out_channels", "cross_attention_dim", "layers_per_block")
        if list(_as_list(controlnet.config[key])) != list(_as_list(base.unet.config[key]))
    ]
    if mismatches:
        raise InvalidInput(f"ControlNet {name!r} does not fit the base model ({'; '.join(mismatches)})",
                           "use a ControlNet trained for this base model's family (SD 1.5 ControlNets with SD 1.5, SD 2.1 with SD 2.1)",
                           field="controlnet")


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]
