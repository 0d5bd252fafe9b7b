"""Baking an animation: every render (frame x camera) of a condition bundle through a trained renderer.

Writes, into the output folder, an animation (``blender_addon/formats/animation.py``): one PNG per
render (the bundle's width x height) and ``frames.json``.

Frames are rendered in batches; because every frame shares one seeded noise, the batch size
never changes a frame. Work is resumable: ``frames.progress.json`` records which renders are done
for which checkpoint and bundle, and a rerun with the same pair skips them. ``frames.json`` is
written last, so its presence marks a complete bake.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blender_addon.formats.animation import DEFAULT_FPS, Animation, AnimationFrame, frame_file, write_animation_manifest
from blender_addon.formats.condition_bundle import MANIFEST_NAME, ConditionBundle, read_bundle
from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write, atomic_write_json

from ...errors import InvalidInput
from ...formats.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from ...progress import Progress
from .conditions import ConditionTensors, read_render, require_geometry_passes
from .renderer import DeferredRenderer

PROGRESS_NAME = "frames.progress.json"


@dataclass
class BakeResult:
    frames_written: int
    frames_reused: int
    manifest: Path


def read_condition_bundle(root: Path) -> ConditionBundle:
    """A condition bundle with every pass the renderer needs, or InvalidInput naming what is missing."""
    try:
        bundle = read_bundle(root)
        require_geometry_passes(bundle)
    except FormatError as error:
        raise InvalidInput.from_format_error(error) from None
    return bundle


def bake_animation(renderer: DeferredRenderer, checkpoint_dir: Path, bundle_dir: Path, out_dir: Path,
                   progress: Progress, batch_size: int = 4, fps: float | None = None) -> BakeResult:
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    bundle = read_condition_bundle(bundle_dir)
    if renderer.config.channels.ambient_dims:
        try:
            require_geometry_passes(bundle, with_ambient=True)
        except FormatError as error:
            raise InvalidInput.from_format_error(error) from None
    renderer.check_size(bundle.height, bundle.width)
    identity = _bake_identity(Path(checkpoint_dir), bundle_dir)
    done = _finished_renders(out_dir, identity)
    pending = [render for render in bundle.renders if frame_file(render.view, render.frame) not in done]
    total = len(bundle.renders)
    progress.update((total - len(pending)) / total, f"rendering {len(pending)} of {total} frames")
    for start in range(0, len(pending), max(1, batch_size)):
        batch = pending[start:start + max(1, batch_size)]
        try:
            conditions = ConditionTensors.stack([read_render(bundle_dir, bundle, render, renderer.config.expression_names) for render in batch])
        except FormatError as error:
            raise InvalidInput.from_format_error(error) from None
        images = renderer.render(conditions)
        for render, image in zip(batch, images):
            name = frame_file(render.view, render.frame)
            save_image(out_dir / name, image)
            done.add(name)
        atomic_write_json(out_dir / PROGRESS_NAME, {"identity": identity, "done": sorted(done)})
        finished = total - len(pending) + start + len(batch)
        progress.update(finished / total, f"rendered {finished}/{total} frames")
    manifest = write_animation_manifest(out_dir, animation_of(bundle, fps))
    (out_dir / PROGRESS_NAME).unlink(missing_ok=True)
    return BakeResult(len(pending), total - len(pending), manifest)


def animation_of(bundle: ConditionBundle, fps: float | None) -> Animation:
    chosen_fps = fps if fps is not None else float(bundle.source.get("fps", DEFAULT_FPS))
    if not chosen_fps > 0:
        raise InvalidInput(f"fps must be positive, got {chosen_fps}", field="fps")
    renders = sorted(bundle.renders, key=lambda render: (render.view, render.frame))
    frames = [AnimationFrame(render.frame, render.view, frame_file(render.view, render.frame)) for render in renders]
    return Animation(chosen_fps, bundle.width, bundle.height, frames)


def save_image(path: Path, image: torch.Tensor) -> Path:
    """(3, H, W) in [-1, 1] -> RGB PNG, written atomically."""
    from PIL import Image

    pixels = ((image.detach().float().cpu().permute(1, 2, 0).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
    return atomic_write(path, lambda temp: Image.fromarray(pixels).save(temp, format="PNG"))


def _bake_identity(checkpoint_dir: Path, bundle_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in (checkpoint_dir / CONFIG_NAME, checkpoint_dir / WEIGHTS_NAME, bundle_dir / MANIFEST_NAME):
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _finished_renders(out_dir: Path, identity: str) -> set[str]:
    path = out_dir / PROGRESS_NAME
    if not path.is_file():
        return set()
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return set()
    if record.get("identity") != identity:
        return set()
    return {name for name in record.get("done", []) if (out_dir / name).is_file()}
