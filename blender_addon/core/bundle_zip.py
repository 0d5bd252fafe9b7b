"""Zip a condition bundle folder for upload (``conditions.json`` at the zip's root), or a folder of files
(head meshes for a neural head's training or fitting)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..formats.condition_bundle import MANIFEST_NAME, read_bundle


def zip_bundle(folder: str | Path) -> bytes:
    """The bundle's files (validated first, so a broken bundle is refused here, not by the server)."""
    root = Path(folder)
    bundle = read_bundle(root)
    names = [MANIFEST_NAME] + sorted({relative for render in bundle.renders for relative in render.passes.values()})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.write(root / name, name)
    return buffer.getvalue()


def zip_folder(folder: str | Path) -> bytes:
    """Every file under ``folder``, by its path relative to it."""
    root = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()
