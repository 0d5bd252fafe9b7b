"""A training run's saved config: what a rerun of the same command resumes with.

A new run saves the requested config; a resumed run keeps the saved one, taking only the settings in
``resumable`` (how long it trains and how often it reports) from the request, and refuses a request that
differs in anything else (another network or optimisation setup would not continue the same run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from backend.formats.configs import config_from_dict, config_to_dict
from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write_json

TRAINING_CONFIG_NAME = "training_config.json"
C = TypeVar("C")


def resolve_run_config(run_dir: Path, requested: C, resumable: tuple[str, ...], write: bool = True) -> C:
    """The run's config (see the module docstring). Only ``write`` saves it."""
    path = run_dir / TRAINING_CONFIG_NAME
    if not path.is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        if write:
            atomic_write_json(path, config_to_dict(requested))
        return requested
    saved = config_from_dict(type(requested), json.loads(path.read_text(encoding="utf-8")), TRAINING_CONFIG_NAME)
    saved_dict, requested_dict = config_to_dict(saved), config_to_dict(requested)
    for name in resumable:
        saved_dict.pop(name), requested_dict.pop(name)
    if saved_dict != requested_dict:
        differing = sorted(key for key in saved_dict if saved_dict[key] != requested_dict[key])
        raise FormatError("config", f"{run_dir} was started with different settings ({', '.join(differing)})",
                          "resume with the same --config, or pass a new --out to start another run")
    for name in resumable:
        setattr(saved, name, getattr(requested, name))
    if write:
        atomic_write_json(path, config_to_dict(saved))
    return saved
