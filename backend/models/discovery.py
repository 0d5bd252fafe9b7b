"""Register every model a folder holds, recognising each by its files (``models scan FOLDER``).

What an artist has is usually a folder of downloads: an Automatic1111 ``models`` folder
(``Stable-diffusion``, ``ControlNet``, ``Lora``), a ComfyUI one (``checkpoints``, ``controlnet``,
``loras``), a Hugging Face cache (``models--org--name/snapshots/<hash>``), or a plain folder of
model folders. The folder is walked recursively and each model is recognised by its files, never
by loading weights:

- a diffusers pipeline folder (``model_index.json``)                     -> role ``base``
- a diffusers ControlNet folder (``config.json`` naming ``ControlNetModel``) -> ``controlnet-<kind>``
- a diffusers VAE folder (``AutoencoderKL``) -> ``vae``
- a ``.safetensors`` file, by its tensor names (``models.file_kinds``): LoRA -> ``lora``;
  textual-inversion embedding -> ``embedding``; VAE -> ``vae``; a ControlNet's (any of the three
  layouts) -> ``controlnet-<kind>``; an LDM UNet (``model.diffusion_model.*``) -> ``base``

A ControlNet's kind comes from its name (``openpose``/``pose``, ``depth``, ``normal``). A Hub cache
entry is named after its repository (``stable-diffusion-v1-5``), not its snapshot hash; files of the
same name in different folders (``anime/model.safetensors``, ``photo/model.safetensors``) are named
after their folder (``anime-model``, ``photo-model``). A folder reached again through a link (a
link loop, or a models folder linked twice) is walked once. Everything else is reported as skipped
with the reason (pickled weights: the ``models convert`` command; the ``.yaml`` configs A1111 keeps
beside its models are read where they matter, not registered). What is already registered is left alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AvatarFoundryError, InvalidInput
from .file_kinds import ROLE_OF_KIND, unsupported_kind_error, weights_kind
from .store import ADAPTER_CLASSES, CONTROLNET_ROLES, ModelEntry, ModelStore, tensor_shapes

_CONTROL_WORDS = {"openpose": "pose", "pose": "pose", "depth": "depth", "normal": "normal", "normalbae": "normal"}
PICKLED_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_BESIDE_MODEL_SUFFIXES = (".yaml", ".yml", ".json", ".txt", ".md", ".png", ".jpg", ".jpeg", ".webp", ".civitai.info")


@dataclass
class ScanReport:
    added: list[ModelEntry] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """(path, why it was not registered)."""

    def to_json(self) -> dict:
        return {"added": [entry.to_json() for entry in self.added],
                "skipped": [{"path": str(path), "reason": reason} for path, reason in self.skipped]}


@dataclass(frozen=True)
class Candidate:
    path: Path
    name: str


def scan_folder(store: ModelStore, folder: str | Path) -> ScanReport:
    """Register the recognisable models anywhere under ``folder`` (see the module docstring)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder", "point at the folder holding your model folders and .safetensors files",
                           field="folder")
    report = ScanReport()
    known_paths = {entry.path.resolve(): entry.name for entry in store.list()}
    known_names = {entry.name for entry in store.list()}
    for candidate in named_after_folders(candidates(root, report), known_names):
        resolved = candidate.path.resolve()
        if resolved in known_paths:
            report.skipped.append((candidate.path, f"already registered as {known_paths[resolved]!r}"))
            continue
        role = recognise(candidate.path, candidate.name)
        if isinstance(role, Unrecognised):
            report.skipped.append((candidate.path, role.reason))
            continue
        name = _free_name(candidate.name, known_names)
        try:
            entry = store.add(candidate.path, name, role)
        except AvatarFoundryError as error:
            report.skipped.append((candidate.path, f"{error.message}" + (f" ({error.hint})" if error.hint else "")))
            continue
        report.added.append(entry)
        known_paths[resolved] = entry.name
        known_names.add(entry.name)
    return report


def candidates(folder: Path, report: ScanReport, visited: set[Path] | None = None) -> list[Candidate]:
    """Model folders and files under ``folder``: a model folder is not entered, a Hub cache entry
    stands for its current snapshot, other folders are walked, each once (``visited``: the folders
    seen, resolved); files no model can be are skipped."""
    visited = visited if visited is not None else set()
    visited.add(folder.resolve())
    found: list[Candidate] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if path.resolve() in visited:
                continue
            if path.name.startswith("models--"):
                found.extend(_hub_cache_entry(path, report, visited))
            elif _is_model_folder(path):
                visited.add(path.resolve())
                found.append(Candidate(path, model_name(path)))
            else:
                found.extend(candidates(path, report, visited))
        elif path.suffix == ".safetensors":
            found.append(Candidate(path, model_name(path)))
        elif path.suffix in PICKLED_SUFFIXES:
            report.skipped.append((path, f"pickled weights are never loaded; convert them with 'avatar-foundry models convert {path}'"))
        elif path.name.lower().endswith(_BESIDE_MODEL_SUFFIXES):
            report.skipped.append((path, "a config or note beside a model, not a model (configs ship with Avatar Foundry)"))
        else:
            report.skipped.append((path, "not a .safetensors file or a diffusers folder"))
    return found


def _is_model_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file() or (path / "config.json").is_file()


def _hub_cache_entry(path: Path, report: ScanReport, visited: set[Path]) -> list[Candidate]:
    """``models--org--name``: the snapshot ``refs/main`` names (else the newest), named ``name``."""
    snapshot = _current_snapshot(path)
    if snapshot is None:
        report.skipped.append((path, "a Hugging Face cache entry without a downloaded snapshot"))
        return []
    repo_name = path.name.split("--")[-1]
    if _is_model_folder(snapshot):
        return [Candidate(snapshot, model_name(Path(repo_name)))]
    return [Candidate(found.path, f"{repo_name}-{found.name}"[:64]) for found in candidates(snapshot, report, visited)]


def _current_snapshot(entry: Path) -> Path | None:
    snapshots = entry / "snapshots"
    main = entry / "refs" / "main"
    if main.is_file() and (snapshots / main.read_text(encoding="utf-8").strip()).is_dir():
        return snapshots / main.read_text(encoding="utf-8").strip()
    folders = sorted((p for p in snapshots.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    return folders[-1] if folders else None


def named_after_folders(found: list[Candidate], taken: set[str]) -> list[Candidate]:
    """Candidates whose name a candidate in another folder (or a registered model) also has are
    named ``<folder>-<name>``, so that each keeps the words that tell them apart."""
    folders: dict[str, set[str]] = {}
    for candidate in found:
        folders.setdefault(candidate.name, set()).add(candidate.path.parent.name)
    return [Candidate(candidate.path, model_name(Path(f"{candidate.path.parent.name}-{candidate.name}")))
            if len(folders[candidate.name]) > 1 or candidate.name in taken else candidate for candidate in found]


def _free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when another model already has it."""
    if name not in taken:
        return name
    counter = 2
    while f"{name[:60]}-{counter}" in taken:
        counter += 1
    return f"{name[:60]}-{counter}"


@dataclass(frozen=True)
class Unrecognised:
    reason: str


def recognise(path: Path, name: str | None = None) -> str | Unrecognised:
    """The store role of the model at ``path`` (a ControlNet's kind from ``name``, default the path's), or why it cannot be told."""
    add_command = f"register it with 'avatar-foundry models add {path} --as NAME --role ROLE'"
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return "base"
        class_name = _class_name(path / "config.json")
        if class_name == "ControlNetModel":
            return _controlnet_role(name or path.name, add_command)
        if class_name == "AutoencoderKL":
            return "vae"
        if class_name in ADAPTER_CLASSES:
            return _unsupported(path.name, "t2i-adapter")
        return Unrecognised("not a diffusers pipeline, ControlNet or VAE folder")
    if path.suffix != ".safetensors":
        return Unrecognised("not a .safetensors file or a diffusers folder (pickled weights are never loaded)")
    try:
        shapes = tensor_shapes(path)
    except AvatarFoundryError as error:
        return Unrecognised(error.message + (f" ({error.hint})" if error.hint else ""))
    kind = weights_kind(shapes)
    if kind == "controlnet":
        return _controlnet_role(name or path.stem, add_command)
    if kind in ROLE_OF_KIND:
        return ROLE_OF_KIND[kind]
    if kind != "unknown":
        return _unsupported(path.name, kind)
    return Unrecognised(f"not recognised from its tensor names; {add_command}")


def _unsupported(name: str, kind: str) -> Unrecognised:
    error = unsupported_kind_error(name, kind)
    return Unrecognised(f"{error.message} ({error.hint})" if error else f"{name}: not supported")


def _controlnet_role(name: str, add_command: str) -> str | Unrecognised:
    kind = control_kind(name)
    if kind is None:
        return Unrecognised(f"a ControlNet, but its name does not say pose, depth or normal; {add_command}")
    return CONTROLNET_ROLES[kind]


def control_kind(name: str) -> str | None:
    """'control_v11p_sd15_openpose' -> 'pose'; None when the name says no control or several."""
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    kinds = {_CONTROL_WORDS[word] for word in words if word in _CONTROL_WORDS}
    return kinds.pop() if len(kinds) == 1 else None


def model_name(path: Path) -> str:
    """A store name from a file or folder name: allowed characters only, at most 64."""
    stem = path.name[: -len(path.suffix)] if path.suffix == ".safetensors" else path.name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._")
    return (cleaned or "model")[:64]


def _class_name(config: Path) -> str | None:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("_class_name") if isinstance(data, dict) else None
