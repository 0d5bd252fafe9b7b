"""Models the project trained itself on its own synthetic heads and ships inside the package (no
downloaded weights): used when nothing else is registered. ``python build.py train-defaults`` makes
them again (``training/defaults``); each folder holds a checkpoint in the project's format
(config.json + model.safetensors) and a MODEL_CARD.md with its data, training and measured quality."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODELS = Path(__file__).resolve().parent
DEFAULT_GENERATOR = DEFAULT_MODELS / "eg3d"
DEFAULT_GENERATOR_NAME = "embedded default generator"
DEFAULT_GENERATOR_NOTICE = ("no generator given: using the embedded default generator (a small EG3D trained by the project on "
                            "Cycles renders of varied demo heads; see backend/default_models/eg3d/MODEL_CARD.md)")
DEFAULT_RENDERER = DEFAULT_MODELS / "deferred"
DEFAULT_RENDERER_NAME = "embedded default renderer"
DEFAULT_RENDERER_NOTICE = ("no renderer given: using the embedded default renderer (a small deferred renderer trained by the project "
                           "on Cycles renders of the demo head; it knows that character only: see "
                           "backend/default_models/deferred/MODEL_CARD.md)")


def default_generator() -> Path:
    """The embedded generator's checkpoint folder; a clear error when this install lacks it."""
    return _embedded(DEFAULT_GENERATOR, DEFAULT_GENERATOR_NAME, "pass a generator")


def default_renderer() -> Path:
    """The embedded renderer's checkpoint folder; a clear error when this install lacks it."""
    return _embedded(DEFAULT_RENDERER, DEFAULT_RENDERER_NAME, "pass a trained renderer (--checkpoint)")


def _embedded(folder: Path, name: str, alternative: str) -> Path:
    from backend.errors import ModelMissing

    if not (folder / "model.safetensors").is_file():
        raise ModelMissing(f"this install has no {name} ({folder} is missing)",
                           f"reinstall the backend, run 'python build.py train-defaults' in a checkout, or {alternative}")
    return folder
