"""``models convert FILE``: a pickled checkpoint (an official ControlNet ``.pth``) -> ``.safetensors``.

The file is read with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
containers and refuses any other pickled object, so no code from the file can run. Everything
else in Avatar Foundry reads only ``.safetensors``. An A1111 textual-inversion ``.pt`` (its vectors
under ``string_to_param``) becomes the ``emb_params`` file A1111 itself writes. A file that is not a
checkpoint at all (a Git LFS pointer, a web page, a file that is already safetensors) is named as
what it is; whatever the file holds, the result is a file or a one-line error, never a traceback.
"""

from __future__ import annotations

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
        with open(source, "rb") as handle:  # a handle: torch would read a file named .safetensors as safetensors
            return torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any file content: a one-line error, never a traceback
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise InvalidInput(f"{source.name} cannot be read as plain weights ({first_line})",
                           "only checkpoints of tensors can be converted: other pickled objects are never loaded", field="path") from None


def convert_to_safetensors(path: str | Path, out: str | Path | None = None) -> Path:
    from safetensors.torch import save_file

    from .file_kinds import refuse_non_safetensors, sniff

    source = Path(path).expanduser()
    if not source.is_file():
        raise ModelMissing(f"{source} does not exist", "check the path", field="path")
    kind = sniff(source)
    if kind == "safetensors":
        raise InvalidInput(f"{source.name} is already a safetensors file; there is nothing to convert",
                           f"register it with 'avatar-foundry models add {source} --as NAME'", field="path")
    if kind != "pickle":
        refuse_non_safetensors(source, kind)
    target = Path(out).expanduser() if out else _converted_name(source)
    data = load_plain_checkpoint(source)
    if isinstance(data, dict) and isinstance(data.get("decoder_state_dict"), dict):
        raise InvalidInput(f"{source.name} is an NPHM training checkpoint (decoder_state_dict, latent codes)",
                           "convert it as NPHM: add --nphm-expression EXPRESSION.tar --nphm-anchors anchors_39.npy", field="path")
    tensors = _named_tensors(data)
    if not tensors:
        raise InvalidInput(f"{source.name} holds no named tensors", "convert a model checkpoint (a state dict of tensors)", field="path")
    return atomic_write(target, lambda temp: save_file(tensors, str(temp)))


def _converted_name(source: Path) -> Path:
    """Beside the source; a pickle that was named ``.safetensors`` keeps its file and gets ``.converted.safetensors``."""
    return source.with_suffix(".converted.safetensors") if source.suffix == ".safetensors" else source.with_suffix(".safetensors")


def _named_tensors(data) -> dict:
    """The checkpoint's tensors by name: a state dict (or one under ``state_dict``), or an A1111 embedding's vectors."""
    import torch

    if isinstance(data, dict) and isinstance(data.get("string_to_param"), dict) and "*" in data["string_to_param"]:
        return {"emb_params": data["string_to_param"]["*"].detach().clone().contiguous()}
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    return {key: value.detach().clone().contiguous() for key, value in (state or {}).items()
            if isinstance(key, str) and isinstance(value, torch.Tensor)}
