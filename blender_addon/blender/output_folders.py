"""Where the add-on writes: folder settings resolved to absolute paths.

A ``//`` folder is relative to the saved .blend file. A file that was never saved has no folder,
and Blender would resolve ``//`` against its working directory (wherever Blender was started), so
an unsaved file's ``//`` folders go under ``<backend data folder>/results/`` instead (the backend
data folder is a preference; Open Results shows the place). Paths handed to Blender datablocks
(image sequences, strips) are absolute, so they resolve wherever the file is saved and opened.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .preferences import preferences

UNSAVED_RESULTS_FOLDER = "results"
DEFAULT_OUTPUT = "//avatar_foundry/"


def unsaved_results_root(context: bpy.types.Context | None = None) -> Path:
    """``<backend data folder>/results``: the home of an unsaved file's ``//`` folders."""
    data_dir = Path(bpy.path.abspath(preferences(context).data_dir)).expanduser()
    return (data_dir / UNSAVED_RESULTS_FOLDER).resolve()


def resolve_folder(setting: str, context: bpy.types.Context | None = None) -> Path:
    """The absolute folder a folder setting names (empty: ``//avatar_foundry/``)."""
    setting = setting.strip() or DEFAULT_OUTPUT
    if setting.startswith("//") and not bpy.data.filepath:
        return unsaved_results_root(context) / setting[2:].lstrip("/\\")
    return Path(bpy.path.abspath(setting)).expanduser().resolve()


def results_folder(context: bpy.types.Context | None = None) -> Path:
    """Where finished jobs' results are downloaded (``<folder>/<job id>``): the Default output folder preference."""
    return resolve_folder(preferences(context).output_dir, context)
