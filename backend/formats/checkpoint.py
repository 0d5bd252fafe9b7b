"""Checkpoints: ``model.safetensors`` + ``config.json`` (+ ``train_state.safetensors`` to resume).

Nothing here unpickles: weights are safetensors, configs JSON, and optimizer state is flattened
into safetensors tensors plus a JSON description of its structure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write, atomic_write_json

from ..errors import ModelMissing
from .configs import config_from_dict, config_to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TRAIN_STATE_NAME = "train_state.safetensors"
CHECKPOINT_FORMAT_VERSION = 1

C = TypeVar("C")


def save_checkpoint(directory: str | Path, kind: str, config: Any, state_dict: dict, extra: dict | None = None) -> Path:
    """Write weights then config (the config's presence marks a complete checkpoint)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}
    atomic_write(directory / WEIGHTS_NAME, lambda temp: save_file(tensors, str(temp)))
    atomic_write_json(directory / CONFIG_NAME, {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": kind,
        "config": config_to_dict(config),
        "extra": extra or {},
    })
    return directory


def read_checkpoint_config(directory: str | Path, kind: str, config_cls: type[C]) -> tuple[C, dict]:
    """The config (as ``config_cls``) and extra metadata of a checkpoint of ``kind``."""
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise ModelMissing(f"no checkpoint at {directory} ({CONFIG_NAME} is missing)",
                           "point at a folder written by 'avatar-foundry train', which holds config.json and model.safetensors")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise FormatError(str(path), f"is not valid JSON: {error}") from None
    if document.get("kind") != kind:
        raise FormatError(f"{path}.kind", f"this is a {document.get('kind')!r} checkpoint, but a {kind!r} checkpoint is needed",
                          "pass a checkpoint trained for this task")
    return config_from_dict(config_cls, document.get("config", {}), f"{path.name}.config"), document.get("extra", {})


def load_weights(directory: str | Path, device: str = "cpu") -> dict:
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise ModelMissing(f"{path} is missing", "the checkpoint is incomplete: train again or copy the whole folder")
    return load_file(str(path), device=device)


def save_train_state(directory: str | Path, state: dict[str, Any]) -> Path:
    """Save a nested dict (optimizer states, counters, RNG) that may hold tensors, without pickle."""
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    structure = _flatten(state, tensors)
    metadata = {"structure": json.dumps(structure)}
    return atomic_write(Path(directory) / TRAIN_STATE_NAME, lambda temp: save_file(tensors, str(temp), metadata=metadata))


def load_train_state(directory: str | Path) -> dict[str, Any] | None:
    """The state saved by :func:`save_train_state`, or None when there is none to resume."""
    from safetensors import safe_open

    path = Path(directory) / TRAIN_STATE_NAME
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        structure = json.loads(handle.metadata()["structure"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    return _unflatten(structure, tensors)


def _flatten(value: Any, tensors: dict[str, Any]) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().contiguous().cpu()
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[_flatten(k, tensors), _flatten(v, tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_flatten(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_flatten(v, tensors) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a train state")


def _unflatten(value: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__dict__" in value:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in value["__dict__"]}
        if "__tuple__" in value:
            return tuple(_unflatten(v, tensors) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    return value
