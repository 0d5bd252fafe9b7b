"""What a downloaded weights file really holds, told from its first bytes.

A ``.safetensors`` name does not make a file safetensors: a repository cloned without Git LFS
leaves small text pointers, a download behind a login saves the site's HTML page, and some
uploads are pickled checkpoints renamed. Each gets a message naming what the file is, instead
of "truncated" or a traceback from a parser that expected weights.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import InvalidInput, ModelMissing

_SNIFF_BYTES = 512
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<?xml")
_ZIP = b"PK\x03\x04"
_PICKLE_PROTOCOLS = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))


def sniff(path: Path) -> str:
    """'safetensors' | 'lfs-pointer' | 'html' | 'pickle' | 'empty' | 'unknown' for the file at ``path``."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head:
        return "empty"
    if head.startswith(_LFS_POINTER):
        return "lfs-pointer"
    if head.lstrip().lower().startswith(_HTML_STARTS):
        return "html"
    if head.startswith((_ZIP, *_PICKLE_PROTOCOLS)):  # torch.save's zip archive, or a bare (legacy) pickle
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 1:
        return "safetensors"
    return "unknown"


def refuse_non_safetensors(path: Path, kind: str) -> None:
    """Raise the error that names ``kind`` (from :func:`sniff`) when it is not safetensors content."""
    size = path.stat().st_size
    if kind == "lfs-pointer":
        raise ModelMissing(f"{path} is a Git LFS pointer ({size} bytes), not the weights: the repository was cloned without Git LFS",
                           "run 'git lfs pull' in the clone, or download the file from the model page", field="path")
    if kind == "html":
        raise ModelMissing(f"{path} is a web page ({size} bytes of HTML), not weights: the download saved a login or error page",
                           "download the file again from the model page (log in first where the site asks)", field="path")
    if kind == "pickle":
        raise InvalidInput(f"{path} is a pickled PyTorch checkpoint renamed to .safetensors, not safetensors",
                           f"convert it with 'avatar-foundry models convert {path}' (tensors only, nothing unpickled)", field="path")
    if kind == "empty":
        raise ModelMissing(f"{path} is empty (0 bytes)", "download the file again", field="path")


# -- what the tensors of a safetensors file are, told from their names ---------------------------------

KIND_NAMES = {
    "base": "a Stable Diffusion checkpoint", "controlnet": "a ControlNet", "lora": "a LoRA", "embedding": "a textual-inversion embedding",
    "vae": "a VAE", "control-lora": "a Stability Control-LoRA", "t2i-adapter": "a T2I-Adapter",
    "sdxl-embedding": "an SDXL textual-inversion embedding (clip_l/clip_g vectors)",
}
ROLE_OF_KIND = {"base": "base", "lora": "lora", "embedding": "embedding", "vae": "vae"}
_EMBEDDING_KEYS = ("emb_params", "string_to_param.*", "string_to_param")
_VAE_KEYS = ("encoder.conv_in.weight", "decoder.conv_out.weight", "quant_conv.weight")


def weights_kind(shapes: dict[str, list[int]]) -> str:
    """'base' | 'controlnet' | 'lora' | 'embedding' | 'vae' | 'control-lora' | 't2i-adapter' | 'sdxl-embedding' | 'unknown'."""
    from .architectures import controlnet_layout

    names = set(shapes)
    if "lora_controlnet" in names:
        return "control-lora"
    if any(name.startswith(("adapter.body.", "body.0.block1.", "body.0.resnets.")) for name in names):
        return "t2i-adapter"
    if any(name.startswith("model.diffusion_model.") for name in names):
        return "base"
    if controlnet_layout(shapes) is not None:
        return "controlnet"
    if any("lora" in name.lower() for name in names):
        return "lora"
    if names and names <= {"clip_l", "clip_g"}:
        return "sdxl-embedding"
    if names & set(_EMBEDDING_KEYS) or (len(names) == 1 and len(next(iter(shapes.values()))) in (1, 2)):
        return "embedding"
    for prefix in ("", "first_stage_model."):
        if all(prefix + key in names for key in _VAE_KEYS):
            return "vae"
    return "unknown"


def check_kind_fits_role(path: Path, role: str, kind: str) -> None:
    """Refuse a file registered as ``role`` that holds another kind of weights, naming what it holds."""
    expected = "controlnet" if role.startswith("controlnet-") else role
    if kind == expected or (kind == "unknown" and expected in ("base", "controlnet")):  # their architecture checks say more
        return
    error = unsupported_kind_error(path.name, kind)
    if error is not None:
        raise error
    refuse_other_kind(path, role, kind)


def unsupported_kind_error(name: str, kind: str) -> InvalidInput | None:
    """The refusal of a kind of file no role can hold, or None for the kinds that have a role."""
    if kind == "control-lora":
        return InvalidInput(f"{name} is a Stability Control-LoRA (a ControlNet stored as LoRA differences), which Avatar Foundry "
                            "cannot run", "use a full ControlNet of the same control (e.g. control_v11p_sd15_openpose)", field="path")
    if kind == "t2i-adapter":
        return InvalidInput(f"{name} is a T2I-Adapter, not a ControlNet; Avatar Foundry paints with ControlNets only",
                            "use a ControlNet of the same control (e.g. control_v11p_sd15_openpose)", field="path")
    if kind == "sdxl-embedding":
        return InvalidInput(f"{name} is an SDXL embedding (vectors for two text encoders, clip_l and clip_g)",
                            "use an embedding made for SD 1.x or SD 2.x", field="path")
    return None


def refuse_other_kind(path: Path, role: str, kind: str) -> None:
    """Registered as ``role`` but holding ``kind``: name what the file is and the role that fits."""
    what = KIND_NAMES.get(kind, "not recognisable from its tensor names")
    fitting = ROLE_OF_KIND.get(kind) or ("controlnet-pose/-depth/-normal" if kind == "controlnet" else None)
    hint = f"register it with --role {fitting}" if fitting else "pick the file that is the model you meant"
    raise InvalidInput(f"{path.name} is {what}, not {_ROLE_WORDS.get(role, role)}", hint, field="role")


_ROLE_WORDS = {"lora": "a LoRA", "embedding": "a textual-inversion embedding", "vae": "a VAE", "base": "a base model"}
