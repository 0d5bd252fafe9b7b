"""Importing captured multi-view frames with tracked proxies into a deferred dataset.

A capture folder (e.g. a multi-camera rig's frames plus a tracker's rasterised proxy, the way
DiffusionAvatars uses NeRSemble with NPHM tracking) must look like this::

    capture.json
        {"version": 1,
         "expression_names": ["nphm:0", ...],            # the tracker's code layout
         "fps": 24.0,                                     # optional
         "cameras": [{"id": "cam_222200037", "label": [25 numbers]}, ...],   # EG3D labels, head space
         "frames":  [{"index": 0, "expression": [...]}, ...]}
    <camera id>/<frame index, 5 digits>/image.png      the photograph (RGB): the target
                                       /mask.png       foreground matte (L, 255 = head)
                                       /depth.npy      proxy passes rasterised from this camera,
                                       /normal.npy     in the formats of the condition bundle
                                       /canonical.npy  (blender_addon/formats/condition_bundle.py)

Cameras need not see every frame: a missing ``<camera>/<frame>`` folder is skipped. Every image
and pass must have the size of the first one. Photos can be composited onto a flat background
outside the mask (DiffusionAvatars trains on white) with ``background``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from backend.errors import InvalidInput
from backend.progress import Progress
from blender_addon.formats.cameras import HeadFrame, validate_label, view_class, yaw_pitch_from_label
from blender_addon.formats.condition_bundle import (ConditionBundle, Frame, Render, View, default_pass_paths,
                                                    write_bundle_manifest)
from blender_addon.formats.errors import FormatError
from blender_addon.formats.expression import check_code
from blender_addon.formats.files import atomic_write

CAPTURE_MANIFEST = "capture.json"
CAPTURE_VERSION = 1
CAPTURE_FILES = {"target": "image.png", "mask": "mask.png", "depth": "depth.npy", "normal": "normal.npy", "canonical": "canonical.npy"}


def import_capture(capture_dir: Path, out_dir: Path, progress: Progress,
                   background: tuple[int, int, int] | None = (255, 255, 255)) -> ConditionBundle:
    """Write a deferred dataset (condition bundle with target passes) to ``out_dir`` from ``capture_dir``."""
    capture_dir, out_dir = Path(capture_dir), Path(out_dir)
    manifest = _read_manifest(capture_dir)
    names = [str(name) for name in manifest["expression_names"]]
    views = [_view(camera, f"cameras[{i}]") for i, camera in enumerate(manifest["cameras"])]
    frames = [Frame(int(frame["index"]), check_code(frame["expression"], names, f"frames[{i}].expression"))
              for i, frame in enumerate(manifest["frames"])]
    present = [(view, frame) for view in views for frame in frames if (capture_dir / view.id / f"{frame.index:05d}").is_dir()]
    if not present:
        raise InvalidInput(f"no <camera>/<frame> folders found in {capture_dir}",
                           "lay the capture out as <camera id>/<frame index, 5 digits>/image.png, ...", field="capture")
    size: tuple[int, int] | None = None
    renders = []
    for position, (view, frame) in enumerate(present):
        progress.update(position / len(present), f"importing {view.id} frame {frame.index}")
        paths = default_pass_paths(view.id, frame.index, tuple(CAPTURE_FILES))
        size = _copy_render(capture_dir / view.id / f"{frame.index:05d}", out_dir, paths, size, background)
        renders.append(Render(view.id, frame.index, paths))
    source = {"importer": "deferred_capture", "capture": str(capture_dir)}
    if "fps" in manifest:
        source["fps"] = float(manifest["fps"])
    bundle = ConditionBundle(size[1], size[0], HeadFrame(), views, frames, renders, names, source)
    write_bundle_manifest(out_dir, bundle)
    progress.update(1.0, f"imported {len(renders)} renders")
    return bundle


def _read_manifest(capture_dir: Path) -> dict[str, Any]:
    path = capture_dir / CAPTURE_MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{CAPTURE_MANIFEST} not found in {capture_dir}", "see training/datasets/deferred_capture.py for the layout", field="capture")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{path} is not valid JSON: {error}", field=CAPTURE_MANIFEST) from None
    if not isinstance(manifest, dict) or manifest.get("version") != CAPTURE_VERSION:
        raise InvalidInput(f"{path} must be an object with \"version\": {CAPTURE_VERSION}", field="version")
    for key in ("expression_names", "cameras", "frames"):
        if not isinstance(manifest.get(key), list) or (key != "expression_names" and not manifest[key]):
            raise InvalidInput(f"{path} needs a non-empty list '{key}'", field=key)
    return manifest


def _view(camera: Any, field: str) -> View:
    if not isinstance(camera, dict) or not isinstance(camera.get("id"), str):
        raise InvalidInput("each camera needs an 'id' and a 'label'", field=field)
    try:
        label = validate_label(camera.get("label", []), f"{field}.label")
    except FormatError as error:
        raise InvalidInput.from_format_error(error) from None
    yaw, pitch = yaw_pitch_from_label(label)
    return View(camera["id"], label, yaw, pitch, view_class(yaw))


def _copy_render(source: Path, out_dir: Path, paths: dict[str, str], size: tuple[int, int] | None,
                 background: tuple[int, int, int] | None) -> tuple[int, int]:
    from PIL import Image

    missing = [name for name in CAPTURE_FILES.values() if not (source / name).is_file()]
    if missing:
        raise InvalidInput(f"{source} lacks {', '.join(missing)}", "every capture folder needs the photo, the matte and the proxy passes", field="capture")
    with Image.open(source / CAPTURE_FILES["mask"]) as mask_image:
        mask = np.asarray(mask_image.convert("L"))
    with Image.open(source / CAPTURE_FILES["target"]) as photo_image:
        photo = np.asarray(photo_image.convert("RGB"))
    size = size or mask.shape
    for name, shape in (("image.png", photo.shape[:2]), ("mask.png", mask.shape)):
        if shape != size:
            raise InvalidInput(f"{source / name} is {shape[1]}x{shape[0]}, other renders are {size[1]}x{size[0]}",
                               "crop or resize every photo and pass to one size", field="capture")
    if background is not None:
        photo = np.where(mask[..., None] > 127, photo, np.array(background, dtype=np.uint8)).astype(np.uint8)
    atomic_write(out_dir / paths["target"], lambda temp: Image.fromarray(photo).save(temp, format="PNG"))
    atomic_write(out_dir / paths["mask"], lambda temp: Image.fromarray(mask).save(temp, format="PNG"))
    for name in ("depth", "normal", "canonical"):
        atomic_write(out_dir / paths[name], lambda temp, name=name: shutil.copyfile(source / CAPTURE_FILES[name], temp))
    return size
