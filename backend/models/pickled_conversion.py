"""``models convert FILE``: a pickled checkpoint (an official ControlNet ``.pth``) -> ``.safetensors``.

The file is read with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
containers and refuses any other pickled object, so no code from the file can run. Everything
else in Avatar Foundry reads only ``.safetensors``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from blender_addon.formats.files import atomic_write

from ..errors import InvalidInput, ModelMissing


def load_plain_checkpoint(source: Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers, or InvalidInput naming the file."""
    import torch

    if not source.is_file():
        raise ModelMissing(f"{source} does not exist", "check the path", field="path")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise InvalidInput(f"{source.name} cannot be read as plain weights ({first_line})",
                           "only checkpoints of tensors can be converted: other pickled objects are never loaded", field="path") from None


def convert_to_safetensors(path: str | Path, out: str | Path | None = None) -> Path:
    import torch
    from safetensors.torch import save_file

    source = Path(path).expanduser()
    data = load_plain_checkpoint(source)
    target = Path(out).expanduser() if out else source.with_suffix(".safetensors")
    if isinstance(data, dict) and isinstance(data.get("decoder_state_dict"), dict):
        raise InvalidInput(f"{source.name} is an NPHM training checkpoint (decoder_state_dict, latent codes)",
                           "convert it as NPHM: add --nphm-expression EXPRESSION.tar --nphm-anchors anchors_39.npy", field="path")
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    tensors = {key: value.detach().clone().contiguous() for key, value in (state or {}).items()
               if isinstance(key, str) and isinstance(value, torch.Tensor)}
    if not tensors:
        raise InvalidInput(f"{source.name} holds no named tensors", "convert a model checkpoint (a state dict of tensors)", field="path")
    return atomic_write(target, lambda temp: save_file(tensors, str(temp)))
