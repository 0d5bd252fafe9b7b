"""The multi-view dataset: stylized images painted by the multiview stage, read by the GAN trainer.

A folder holding ``dataset.json`` and the images it lists::

    {"version": 1, "resolution": 512, "style": "...", "source_bundle": "...", "background": "black",
     "items": [{"file": "images/v012_c0.png", "label": [25 floats], "yaw": 30.0, "pitch": -5.0,
                "view_class": "front", "view_id": "v012", "candidate": 0,
                "prompt": "...", "negative_prompt": "...", "seed": 1234, "pose_confidence": 0.83}]}

``label`` is the EG3D camera label (``blender_addon.formats.cameras``); ``pose_confidence`` in
[0, 1] says how well the image agrees with its pose condition (the coarse-to-fine discriminator
trusts the fine pose label of confident images more). EG3D's own ``{"labels": [[file, label]]}``
layout is also read, for datasets prepared with EG3D's tools.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blender_addon.formats.cameras import VIEW_CLASSES, validate_label, view_class, yaw_pitch_from_label
from blender_addon.formats.condition_bundle import check_relative_path
from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write_json, read_json_file

DATASET_VERSION = 1
MANIFEST_NAME = "dataset.json"
DATASET_BACKGROUNDS = ("black", "white", "keep")


@dataclass
class MultiviewItem:
    file: str
    label: list[float]
    yaw: float
    pitch: float
    view_class: str
    pose_confidence: float = 1.0
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    view_id: str = ""
    candidate: int = 0


@dataclass
class MultiviewDataset:
    resolution: int
    items: list[MultiviewItem] = field(default_factory=list)
    style: str = ""
    source_bundle: str = ""
    version: int = DATASET_VERSION
    background: str = "keep"
    """'black' or 'white' when the images were matted onto that colour (the GAN renders on it); 'keep'
    when they carry whatever background they were painted with (datasets from before matting)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "resolution": self.resolution,
            "style": self.style,
            "source_bundle": self.source_bundle,
            "background": self.background,
            "items": [asdict(item) for item in self.items],
        }

    @classmethod
    def from_json(cls, data: Any) -> "MultiviewDataset":
        if not isinstance(data, dict):
            raise FormatError(MANIFEST_NAME, "must hold a JSON object")
        if "labels" in data and "items" not in data:
            return _from_eg3d_labels(data)
        version = data.get("version")
        if version != DATASET_VERSION:
            raise FormatError("version", f"dataset version {version!r} is not supported (this reads {DATASET_VERSION})")
        resolution = data.get("resolution")
        if not isinstance(resolution, int) or resolution < 8:
            raise FormatError("resolution", f"must be an integer >= 8, got {resolution!r}")
        raw_items = data.get("items")
        if not isinstance(raw_items, list):
            raise FormatError("items", "must be a list")
        items = [_parse_item(raw, f"items[{i}]") for i, raw in enumerate(raw_items)]
        background = data.get("background", "keep")
        if background not in DATASET_BACKGROUNDS:
            raise FormatError("background", f"must be one of {', '.join(DATASET_BACKGROUNDS)}, got {background!r}")
        return cls(resolution, items, str(data.get("style", "")), str(data.get("source_bundle", "")), version, background)


def _parse_item(raw: Any, path: str) -> MultiviewItem:
    if not isinstance(raw, dict):
        raise FormatError(path, "must be an object")
    known = {f for f in MultiviewItem.__dataclass_fields__}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise FormatError(f"{path}.{unknown[0]}", "unknown field")
    for required in ("file", "label"):
        if required not in raw:
            raise FormatError(f"{path}.{required}", "is missing")
    check_relative_path(raw["file"], f"{path}.file")
    label = validate_label(raw["label"], f"{path}.label")
    yaw, pitch = yaw_pitch_from_label(label)
    item = MultiviewItem(**{**{"yaw": yaw, "pitch": pitch, "view_class": view_class(yaw)}, **raw, "label": label})
    if item.view_class not in VIEW_CLASSES:
        raise FormatError(f"{path}.view_class", f"must be one of {', '.join(VIEW_CLASSES)}")
    if not (isinstance(item.pose_confidence, (int, float)) and math.isfinite(item.pose_confidence) and 0 <= item.pose_confidence <= 1):
        raise FormatError(f"{path}.pose_confidence", f"must be a number in [0, 1], got {item.pose_confidence!r}")
    return item


def _from_eg3d_labels(data: dict) -> MultiviewDataset:
    items = []
    for i, entry in enumerate(data["labels"]):
        if not (isinstance(entry, list) and len(entry) == 2):
            raise FormatError(f"labels[{i}]", "must be [file, label]")
        items.append(_parse_item({"file": entry[0], "label": entry[1]}, f"labels[{i}]"))
    return MultiviewDataset(resolution=0, items=items)


def read_dataset(root: str | Path, check_files: bool = True) -> MultiviewDataset:
    root = Path(root)
    dataset = MultiviewDataset.from_json(read_json_file(root / MANIFEST_NAME, "point at a folder written by 'avatar-foundry multiview'"))
    if check_files:
        for i, item in enumerate(dataset.items):
            if not (root / item.file).is_file():
                raise FormatError(f"items[{i}].file", f"{item.file} is missing from {root}")
    return dataset


def write_dataset_manifest(root: str | Path, dataset: MultiviewDataset) -> Path:
    """Write ``dataset.json`` atomically; images must already be in place."""
    return atomic_write_json(Path(root) / MANIFEST_NAME, dataset.to_json())
