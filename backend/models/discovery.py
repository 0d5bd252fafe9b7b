"""Register every model a folder holds, recognising each by its files (``models scan FOLDER``).

What an artist has is usually a folder of downloads; telling the store about each by hand is the
chore this removes. A folder entry is recognised by its files, never by loading weights:

- a diffusers pipeline folder (``model_index.json``)           -> role ``base``
- a diffusers ControlNet folder (``config.json`` naming ``ControlNetModel``) whose name says which
  control it is (``openpose``/``pose``, ``depth``, ``normal``)  -> role ``controlnet-<kind>``
- a ``.safetensors`` file whose tensor names are LoRA weights   -> role ``lora``

Anything else is reported as skipped with the reason and the exact ``models add`` command that
registers it (a single-file checkpoint, for one, needs a config folder that cannot be guessed).
Entries are named after their file or folder; what is already registered is left alone.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AvatarFoundryError, InvalidInput
from .store import CONTROLNET_ROLES, ModelEntry, ModelStore

_HEADER_LIMIT_BYTES = 100 * 1024 * 1024
_CONTROL_WORDS = {"openpose": "pose", "pose": "pose", "depth": "depth", "normal": "normal", "normalbae": "normal"}


@dataclass
class ScanReport:
    added: list[ModelEntry] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """(path, why it was not registered)."""

    def to_json(self) -> dict:
        return {"added": [entry.to_json() for entry in self.added],
                "skipped": [{"path": str(path), "reason": reason} for path, reason in self.skipped]}


def scan_folder(store: ModelStore, folder: str | Path) -> ScanReport:
    """Register the recognisable models directly inside ``folder`` (see the module docstring)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder", "point at the folder holding your model folders and .safetensors files",
                           field="folder")
    report = ScanReport()
    known_paths = {entry.path: entry.name for entry in store.list()}
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        resolved = path.resolve()
        if resolved in known_paths:
            report.skipped.append((path, f"already registered as {known_paths[resolved]!r}"))
            continue
        role = recognise(path)
        if isinstance(role, Unrecognised):
            report.skipped.append((path, role.reason))
            continue
        name = model_name(path)
        try:
            entry = store.add(path, name, role)
        except AvatarFoundryError as error:
            report.skipped.append((path, f"{error.message}" + (f" ({error.hint})" if error.hint else "")))
            continue
        report.added.append(entry)
        known_paths[entry.path] = entry.name
    return report


@dataclass(frozen=True)
class Unrecognised:
    reason: str


def recognise(path: Path) -> str | Unrecognised:
    """The store role of the model at ``path``, or why it cannot be told."""
    add_command = f"register it with 'avatar-foundry models add {path} --as NAME --role ROLE'"
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return "base"
        if _class_name(path / "config.json") == "ControlNetModel":
            kind = control_kind(path.name)
            if kind is None:
                return Unrecognised(f"a ControlNet, but its name does not say pose, depth or normal; {add_command}")
            return CONTROLNET_ROLES[kind]
        return Unrecognised("not a diffusers pipeline or ControlNet folder")
    if path.suffix != ".safetensors":
        return Unrecognised("not a .safetensors file or a diffusers folder (pickled weights are never loaded)")
    names = _tensor_names(path)
    if names is None:
        return Unrecognised("not a readable .safetensors file (half downloaded?)")
    if any("lora" in name.lower() for name in names):
        return "lora"
    if any(name.startswith(("model.diffusion_model.", "control_model.")) for name in names):
        return Unrecognised(f"a single-file checkpoint needs a local config folder: {add_command} --config DIFFUSERS_FOLDER")
    return Unrecognised(f"not recognised from its tensor names; {add_command}")


def control_kind(name: str) -> str | None:
    """'control_v11p_sd15_openpose' -> 'pose'; None when the name says no control or several."""
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    kinds = {_CONTROL_WORDS[word] for word in words if word in _CONTROL_WORDS}
    return kinds.pop() if len(kinds) == 1 else None


def model_name(path: Path) -> str:
    """A store name from a file or folder name: allowed characters only, at most 64."""
    stem = path.stem if path.is_file() else path.name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._")
    return (cleaned or "model")[:64]


def _class_name(config: Path) -> str | None:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("_class_name") if isinstance(data, dict) else None


def _tensor_names(path: Path) -> list[str] | None:
    """The tensor names in a .safetensors header (the header only: weights are never read)."""
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return None
            length = struct.unpack("<Q", prefix)[0]
            if length > _HEADER_LIMIT_BYTES:
                return None
            header = json.loads(handle.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return [name for name in header if name != "__metadata__"] if isinstance(header, dict) else None
