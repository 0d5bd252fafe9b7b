"""The model store: named references to diffusion weights on local disk, never fetched from a hub.

A store is a folder holding ``models.json``::

    {"version": 1, "models": [{"name": "sd15", "role": "base", "format": "diffusers",
                               "path": "/abs/path/to/folder", "config": null}]}

Entries point at the weights where they lie (nothing is copied: models are gigabytes). Each entry
is validated when it is added and again when it is resolved, so a folder that was moved, deleted
or only half downloaded gives an error naming the path and what is missing, before any loading.

Formats:
- ``diffusers``: a folder written by ``save_pretrained``. A base model has ``model_index.json``
  and one sub-folder per component; a ControlNet has ``config.json`` and its weights.
- ``single-file``: one ``.safetensors`` checkpoint in the original (LDM) layout (a ControlNet
  also prefix-less or with diffusers names), loaded with diffusers' single-file loading. Its
  ``architecture`` (``models.architectures``: SD 1.5, SD 2.1 512/768-v, SD 1.5 ControlNet) is told
  from the file at registration and its configs ship with the project; ``config`` (a diffusers
  folder of the same architecture: configs and tokenizer, weights not needed) overrides them.
- ``lora``: one ``.safetensors`` file of LoRA weights (``models.lora_files``).
- ``embedding``: one ``.safetensors`` textual-inversion embedding (``models.textual_inversion``),
  used by its name as the trigger word in prompts.
- ``checkpoint``: a project checkpoint folder (``config.json`` + ``model.safetensors``), role ``nphm``
  (an NPHM trained with ``train nphm`` or converted from the released files with ``models convert``).

A ``vae`` is a diffusers ``AutoencoderKL`` folder or a single file in LDM names
(``models.vae_files``), chosen per job to replace the base model's VAE.

Only ``.safetensors`` weights are accepted: pickled ``.bin``/``.ckpt`` files are never loaded; a
file is judged by its content (``models.file_kinds``), and the path is kept as given, links
unresolved, because a Hugging Face cache names its blobs by hash and only the links say what they are.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blender_addon.formats.files import atomic_write_json

from ..errors import InvalidInput, ModelMissing

STORE_VERSION = 1
REGISTRY_NAME = "models.json"
ROLES = ("base", "controlnet-pose", "controlnet-depth", "controlnet-normal", "lora", "embedding", "vae", "nphm")
FORMATS = ("diffusers", "single-file", "lora", "embedding", "checkpoint")
ONE_FILE_ROLES = ("lora", "embedding")
CONTROLNET_ROLES = {"pose": "controlnet-pose", "depth": "controlnet-depth", "normal": "controlnet-normal"}
BASE_MODEL_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_UNFINISHED_SUFFIXES = (".incomplete", ".partial", ".part", ".lock", ".tmp")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: str
    path: Path
    format: str
    config: Path | None = None
    """For a single-file model: a diffusers folder holding its configs (instead of the shipped ones)."""
    architecture: str | None = None
    """For a single-file model without ``config``: its shipped architecture (``models.architectures``)."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "format": self.format, "path": str(self.path),
                "config": str(self.config) if self.config else None, "architecture": self.architecture}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelEntry":
        config = data.get("config")
        return cls(str(data["name"]), str(data["role"]), Path(data["path"]), str(data["format"]), Path(config) if config else None,
                   data.get("architecture"))


class ModelStore:
    """Named models on disk: ``add`` validates and registers, ``resolve`` finds and re-validates."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def registry_path(self) -> Path:
        return self.root / REGISTRY_NAME

    def list(self) -> list[ModelEntry]:
        return list(self._read().values())

    def add(self, path: str | Path, name: str, role: str, config: str | Path | None = None, replace: bool = False) -> ModelEntry:
        """Validate the model at ``path`` and register it as ``name``; the registry is written atomically."""
        _check_name(name)
        if role not in ROLES:
            raise InvalidInput(f"unknown model role {role!r}", f"use one of: {', '.join(ROLES)}", field="role")
        source = named_path(Path(path))
        format_ = detect_format(source, role)
        config_path = Path(config).expanduser().resolve() if config else None
        entry = ModelEntry(name, role, source, format_, config_path)
        validate_entry(entry)
        if format_ == "single-file" and config_path is None and role != "vae":
            entry = ModelEntry(name, role, source, format_, None, infer_single_file_architecture(source, role))
        entries = self._read()
        if name in entries and not replace:
            raise InvalidInput(f"a model named {name!r} is already registered ({entries[name].path})",
                               "choose another name, or remove the old one first", field="name")
        entries[name] = entry
        self._write(entries)
        return entry

    def remove(self, name: str) -> ModelEntry:
        entries = self._read()
        if name not in entries:
            raise self._missing(name, entries)
        entry = entries.pop(name)
        self._write(entries)
        return entry

    def resolve(self, name: str, role: str | None = None) -> ModelEntry:
        """The entry called ``name``, checked to still be complete on disk (and of ``role`` if given)."""
        entries = self._read()
        if name not in entries:
            raise self._missing(name, entries)
        entry = entries[name]
        if role is not None and entry.role != role:
            raise InvalidInput(f"model {name!r} has role {entry.role!r}, not {role!r}",
                               f"pick a model registered with --role {role}", field="model")
        validate_entry(entry)
        return entry

    def pick(self, name: str, role: str, field: str = "model") -> str:
        """``name`` when given; for an empty name the one model registered with ``role`` (so that a
        user with one base model and one ControlNet per control never has to type a name)."""
        if name:
            return name
        names = sorted(entry.name for entry in self.list() if entry.role == role)
        if len(names) == 1:
            return names[0]
        if names:
            raise InvalidInput(f"several models have role {role} ({', '.join(names)})", "name the one to use", field=field)
        raise ModelMissing(f"no model with role {role} is registered in {self.root}",
                           f"register one with 'avatar-foundry models add PATH --as NAME --role {role}' (or models scan FOLDER)",
                           field=field)

    def _missing(self, name: str, entries: dict[str, ModelEntry]) -> ModelMissing:
        known = ", ".join(sorted(entries)) or "none yet"
        return ModelMissing(f"no model named {name!r} in the store {self.root}",
                            f"registered models: {known}; add one with 'avatar-foundry models add PATH --as NAME --role ROLE'",
                            field="model")

    def _read(self) -> dict[str, ModelEntry]:
        if not self.registry_path.is_file():
            return {}
        try:
            data = json.loads(self.registry_path.read_text(encoding="utf-8"))
            if data.get("version") != STORE_VERSION:
                raise ValueError(f"version {data.get('version')!r} is not {STORE_VERSION}")
            return {raw["name"]: ModelEntry.from_json(raw) for raw in data["models"]}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InvalidInput(f"the model registry {self.registry_path} is unreadable: {error}",
                               "fix or delete the file and add the models again") from None

    def _write(self, entries: dict[str, ModelEntry]) -> None:
        ordered = [entries[name].to_json() for name in sorted(entries)]
        atomic_write_json(self.registry_path, {"version": STORE_VERSION, "models": ordered})


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"model name {name!r} is not allowed",
                           "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", field="name")


def named_path(path: Path) -> Path:
    """The absolute path as the user names it: links are kept (a Hugging Face cache's snapshot link
    says ``model.safetensors`` where its blob says a hash); a blob itself is traded for its link."""
    absolute = Path(os.path.abspath(path.expanduser()))
    if absolute.parent.name == "blobs" and absolute.is_file():
        snapshots = absolute.parent.parent / "snapshots"
        target = absolute.resolve()
        links = sorted(link for link in snapshots.rglob("*") if link.is_symlink() and link.resolve() == target) if snapshots.is_dir() else []
        if links:
            return links[-1]
    return absolute


def detect_format(path: Path, role: str) -> str:
    """'diffusers' for a folder, 'lora' / 'embedding' / 'single-file' for a .safetensors file; refuses the rest."""
    from .file_kinds import refuse_non_safetensors, sniff

    if not path.exists():
        raise ModelMissing(f"{path} does not exist", "check the path; models are never downloaded", field="path")
    if role == "nphm":
        if not path.is_dir():
            raise InvalidInput(f"{path} is not a folder, but an NPHM model is a checkpoint folder (config.json + model.safetensors)",
                               "convert released NPHM checkpoints with 'avatar-foundry models convert', or train one with 'train nphm'", field="path")
        return "checkpoint"
    if path.is_dir():
        if role in ONE_FILE_ROLES:
            raise InvalidInput(f"{path} is a folder, but a {role} must be one .safetensors file", f"point at the {role}'s .safetensors file",
                               field="path")
        return "diffusers"
    kind = sniff(path)
    refuse_non_safetensors(path, kind)
    if path.suffix != ".safetensors":
        if kind == "safetensors":
            raise InvalidInput(f"{path} holds safetensors weights but its name does not end in .safetensors",
                               "point at a name that does (in a Hugging Face cache: the file under snapshots/, not blobs/)", field="path")
        raise InvalidInput(f"{path} is not a .safetensors file or a diffusers folder",
                           "convert pickled .ckpt/.bin weights to .safetensors first: they are never unpickled", field="path")
    return role if role in ONE_FILE_ROLES else "single-file"


def validate_entry(entry: ModelEntry) -> None:
    """Raise ModelMissing naming the path and what is missing unless the model is complete on disk."""
    if not entry.path.exists():
        raise ModelMissing(f"model {entry.name!r}: {entry.path} does not exist (moved or deleted?)",
                           "restore the files, or register the model again with 'avatar-foundry models add'", field="path")
    if entry.format == "checkpoint":
        validate_model_folder(entry.path)
    elif entry.format == "diffusers":
        if entry.role == "base":
            validate_base_folder(entry.path)
        else:
            validate_model_folder(entry.path)
    else:
        validate_safetensors_file(entry.path)
        if entry.format == "single-file":
            _validate_single_file_config(entry)
        _check_file_content(entry)
    if entry.format == "diffusers" and entry.role.startswith("controlnet-"):
        _refuse_unsupported_controlnet_folder(entry.path)
    if entry.format == "diffusers" and entry.role == "vae":
        from .vae_files import check_vae_folder

        check_vae_folder(entry.path)


def _check_file_content(entry: ModelEntry) -> None:
    """The file holds what its role needs (a LoRA, an embedding, a VAE), else the error names what it holds."""
    from .lora_files import check_lora_format
    from .textual_inversion import check_embedding_file
    from .vae_files import check_vae_file

    checks = {"lora": check_lora_format, "embedding": check_embedding_file, "vae": check_vae_file}
    if entry.role in checks:
        checks[entry.role](entry.path)


UNSUPPORTED_HINT = "use an SD 1.5 or SD 2.1 class model (and ControlNets / LoRAs made for one); SDXL, Flux and SD 3 are not supported"
ADAPTER_CLASSES = ("T2IAdapter", "MultiAdapter", "FullAdapter", "FullAdapterXL", "LightAdapter")


def _refuse_unsupported_controlnet_folder(folder: Path) -> None:
    config = read_json_object(folder / "config.json")
    class_name = str(config.get("_class_name", ""))
    if class_name in ADAPTER_CLASSES:
        from .file_kinds import unsupported_kind_error

        raise unsupported_kind_error(folder.name, "t2i-adapter")
    if class_name != "ControlNetModel" or config.get("addition_embed_type") == "text_time":
        family = "SDXL" if config.get("addition_embed_type") == "text_time" else class_name or "an unknown model"
        raise InvalidInput(f"{folder.name} is a {family} ControlNet, which Avatar Foundry cannot run", UNSUPPORTED_HINT, field="path")


def read_json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelMissing(f"{path} is unreadable ({error})", "copy the complete model folder, or download it again", field="path") from None
    if not isinstance(data, dict):
        raise ModelMissing(f"{path} is not a JSON object", "copy the complete model folder, or download it again", field="path")
    return data


def infer_single_file_architecture(path: Path, role: str) -> str:
    """The shipped architecture of a single-file checkpoint, told from its header; refuses what cannot run."""
    from .architectures import a1111_prediction_type, check_structure, infer_base_architecture, infer_controlnet_architecture
    from .file_kinds import check_kind_fits_role, weights_kind

    shapes = tensor_shapes(path)
    check_kind_fits_role(path, role, weights_kind(shapes))
    if role == "base":
        architecture = infer_base_architecture(shapes, path.name, a1111_prediction_type(path))
    else:
        architecture = infer_controlnet_architecture(shapes, path.name)
    check_structure(architecture, shapes)
    return architecture


def _validate_single_file_config(entry: ModelEntry) -> None:
    """Single files hold weights only; the architecture is a shipped one or a local diffusers config folder."""
    if entry.config is None:
        return
    if entry.role == "base":
        validate_base_folder(entry.config, weights_required=False)
    else:
        _require_files(entry.config, ("config.json",))


def validate_base_folder(folder: Path, weights_required: bool = True) -> None:
    """A diffusers pipeline folder: model_index.json, each component folder, and (optionally) weights."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelMissing(f"{folder} has no model_index.json", "point at the folder written by save_pretrained (or copy the whole model folder)", field="path")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelMissing(f"{index_path} is not valid JSON ({error}); the download may be incomplete", "download the model again", field="path") from None
    class_name = str(index.get("_class_name", "")) if isinstance(index, dict) else ""
    if "text_encoder_2" in index or "transformer" in index or not class_name.startswith(("StableDiffusionPipeline", "StableDiffusionControlNetPipeline")):
        raise InvalidInput(f"{folder.name} is a {class_name or 'non-Stable-Diffusion'} model, which Avatar Foundry cannot run",
                           UNSUPPORTED_HINT, field="path")
    missing = [name for name in BASE_MODEL_COMPONENTS if not isinstance(index.get(name), list) or None in index.get(name)]
    if missing:
        raise ModelMissing(f"{index_path} lists no {', '.join(missing)}", "use a Stable Diffusion 1.x/2.x pipeline folder", field="path")
    _refuse_special_unet(folder)
    for component in BASE_MODEL_COMPONENTS:
        sub = folder / component
        if not sub.is_dir():
            raise ModelMissing(f"{folder} is missing the '{component}' folder", "copy the complete model folder", field="path")
        if component == "tokenizer":
            _validate_tokenizer_folder(sub)
        elif component == "scheduler":
            _require_files(sub, ("scheduler_config.json",))
        else:
            _require_files(sub, ("config.json",))
            if weights_required:
                validate_model_folder(sub)


_SPECIAL_UNETS = {9: "an inpainting model", 8: "an InstructPix2Pix-style image-editing model", 7: "an upscaler"}


def _refuse_special_unet(folder: Path) -> None:
    """A text-to-image UNet takes the 4 latent channels; inpainting and editing UNets take more."""
    config_path = folder / "unet" / "config.json"
    if not config_path.is_file():
        return
    channels = read_json_object(config_path).get("in_channels", 4)
    if channels != 4:
        kind = _SPECIAL_UNETS.get(channels, "not a text-to-image model")
        raise InvalidInput(f"{folder.name} is {kind}: its UNet takes {channels} input channels, not the 4 of a text-to-image model",
                           "use the text-to-image version of the model (its UNet takes 4 channels)", field="path")


def _validate_tokenizer_folder(folder: Path) -> None:
    """A CLIP tokenizer saved either as one tokenizer.json or as vocab.json + merges.txt."""
    if not (folder / "tokenizer.json").is_file():
        _require_files(folder, ("vocab.json", "merges.txt"))


def validate_model_folder(folder: Path) -> None:
    """One model's folder (a component or a ControlNet): config.json and complete safetensors weights."""
    _require_files(folder, ("config.json",))
    unfinished = sorted(p.name for p in folder.iterdir() if p.name.endswith(_UNFINISHED_SUFFIXES))
    if unfinished:
        raise ModelMissing(f"{folder} holds unfinished download files ({', '.join(unfinished)})", "let the download finish, or download again", field="path")
    shard_indexes = sorted(shard_index_files(folder))
    if shard_indexes:
        for shard in _shards_of(shard_indexes[0]):
            validate_safetensors_file(folder / shard)
        return
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        hint = (f"only pickled weights ({', '.join(pickled)}) were found; save them as .safetensors (they are never unpickled)"
                if pickled else "download the weights again")
        raise ModelMissing(f"{folder} has no .safetensors weights", hint, field="path")
    for weight in weights:
        validate_safetensors_file(weight)


def shard_index_files(folder: Path) -> list[Path]:
    """Shard indexes, plain or of a variant under either naming (``x.safetensors.index.fp16.json``, diffusers'
    and transformers'; ``x.fp16.safetensors.index.json``, other tools')."""
    return [path for path in folder.glob("*.json") if re.search(r"\.safetensors\.index(\.[A-Za-z0-9_]+)?\.json$", path.name)]


def _shards_of(index_file: Path) -> list[str]:
    try:
        weight_map = json.loads(index_file.read_text(encoding="utf-8"))["weight_map"]
        return sorted(set(weight_map.values()))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ModelMissing(f"{index_file} is unreadable ({error})", "download the model again", field="path") from None


def safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The parsed header of a .safetensors file and its length (the weights are not read)."""
    from .file_kinds import refuse_non_safetensors, sniff

    if not path.is_file():
        raise ModelMissing(f"{path} is missing", "restore the file or download it again", field="path")
    refuse_non_safetensors(path, sniff(path))
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelMissing(f"{path} is truncated ({size} bytes)", "download the file again", field="path")
        header_length = struct.unpack("<Q", prefix)[0]
        if header_length > size - 8:
            raise ModelMissing(f"{path} is truncated: its header needs {header_length} bytes", "download the file again", field="path")
        try:
            header = json.loads(handle.read(header_length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelMissing(f"{path} is not a valid .safetensors file", "download the file again", field="path") from None
    if not isinstance(header, dict):
        raise ModelMissing(f"{path} is not a valid .safetensors file", "download the file again", field="path")
    return header, header_length


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape, from the header of a .safetensors file."""
    header, _ = safetensors_header(path)
    return {name: list(info["shape"]) for name, info in header.items() if name != "__metadata__"}


def validate_safetensors_file(path: Path) -> None:
    """Check a .safetensors file is complete: its header parses and every tensor's bytes are present."""
    header, header_length = safetensors_header(path)
    size = path.stat().st_size
    data_end = max((info["data_offsets"][1] for key, info in header.items() if key != "__metadata__"), default=0)
    if 8 + header_length + data_end > size:
        raise ModelMissing(f"{path} is truncated: {size} of {8 + header_length + data_end} bytes present (half downloaded?)",
                           "download the file again", field="path")


def _require_files(folder: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ModelMissing(f"{folder} is missing {', '.join(missing)}", "copy the complete model folder, or download it again", field="path")


def default_store_root() -> Path:
    from blender_addon.formats.protocol import default_data_dir

    return default_data_dir() / "models"
