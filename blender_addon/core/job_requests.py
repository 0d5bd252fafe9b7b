"""How the add-on's steps chain into each other through backend jobs (plain Python, no bpy).

The artist's path is: conditions -> ``multiview`` -> ``train-eg3d`` -> ``generate-avatar`` (with an
optional ``train-style-prior`` for image-guided avatars), and deferred dataset -> ``train-deferred``
-> ``animate``. A finished job's output is named ``job:<id>`` by the next step; ``follow_up`` says
which setting a finished job fills in, so the artist never copies ids by hand.

Trained weights stay on the backend (jobs refer to them), so the add-on downloads everything a job
returns except weight files.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from ..formats.errors import FormatError

JOB_REFERENCE_PREFIX = "job:"
WEIGHT_SUFFIXES = (".safetensors",)
REFERENCE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

FOLLOW_UPS: dict[str, tuple[str, str]] = {
    "multiview": ("train", "dataset"),
    "train-eg3d": ("avatar", "checkpoint"),
    "train-style-prior": ("avatar", "style_prior"),
    "train-deferred": ("animate", "checkpoint"),
    "train-nphm": ("animate", "nphm_model"),
}
"""Kind of a succeeded job -> (settings group, field) that its output feeds."""


def job_reference(job_id: str) -> str:
    return JOB_REFERENCE_PREFIX + job_id


def follow_up(job: dict) -> tuple[str, str, str] | None:
    """(settings group, field, 'job:<id>') for a succeeded job whose output a later step uses."""
    if job.get("state") != "succeeded" or job.get("kind") not in FOLLOW_UPS:
        return None
    group, field = FOLLOW_UPS[job["kind"]]
    return group, field, job_reference(job["id"])


def wanted_artifact(name: str) -> bool:
    """Whether the add-on downloads an artifact: everything but trained weights."""
    return not name.endswith(WEIGHT_SUFFIXES)


def require_reference(value: str, field: str, produced_by: str) -> str:
    """A non-empty job or model reference, or an error saying which step produces it."""
    if not value.strip():
        raise FormatError(field, "is empty", f"run {produced_by} first (its job fills this in), or type a model name")
    return value.strip()


def read_attribute_file(path: str | Path) -> dict[str, list[str]]:
    """An attribute catalogue JSON file ``{"category": ["option", ...]}`` (the backend checks the rest)."""
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError("attributes", f"{source} does not exist", "pick the JSON file of attribute categories, or clear the field") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError("attributes", f"{source} is not a readable JSON file: {error}") from None
    if not isinstance(data, dict):
        raise FormatError("attributes", f"{source} must hold an object of category -> list of options")
    return data


def reference_image_upload(path: str | Path) -> tuple[bytes, str]:
    """(zip holding the reference image, the image's name inside it) for an image-guided avatar."""
    image = Path(path)
    if not image.is_file():
        raise FormatError("reference_image", f"{image} does not exist", "pick the image the avatar should resemble")
    if image.suffix.lower() not in REFERENCE_IMAGE_SUFFIXES:
        raise FormatError("reference_image", f"{image.name} is not an image file", f"use one of {', '.join(REFERENCE_IMAGE_SUFFIXES)}")
    name = "reference" + image.suffix.lower()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(image, name)
    return buffer.getvalue(), name
