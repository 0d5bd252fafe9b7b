"""Job kind ``echo-conditions``: check an uploaded condition bundle and show what the backend received.

Writes ``contact_sheet.png`` (one row per render: pose, depth, normal, canonical, mask and target
when present, each as a thumbnail), ``summary.json`` (counts and value ranges), and one
``rows/<view>_f<frame>.png`` per render as it goes, so a cancelled job keeps the rows it finished.
It is the first job a user runs to see that the add-on's renders reach the backend intact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError
from pydantic import Field

from blender_addon.formats.condition_bundle import PASS_NAMES, ConditionBundle, Render, read_bundle
from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write, atomic_write_json

from .registry import JobContext, JobParams, job_kind

_CAPTION_WIDTH = 96
_BACKGROUND = (24, 24, 24)


class EchoConditionsParams(JobParams):
    thumbnail_size: int = Field(128, ge=16, le=512, description="height in pixels of each pass in the contact sheet")


@job_kind("echo-conditions", EchoConditionsParams, "validate an uploaded condition bundle; return a contact sheet of it",
          requires_upload=True)
def echo_conditions(params: EchoConditionsParams, context: JobContext) -> None:
    bundle = read_bundle(context.inputs_dir)
    columns = [name for name in PASS_NAMES if bundle.renders_with(name)]
    steps = len(bundle.renders) + 1
    rows = []
    for index, render in enumerate(bundle.renders):
        context.progress.update(index / steps, f"render {index + 1}/{len(bundle.renders)}: view {render.view}, frame {render.frame}")
        row = contact_row(context.inputs_dir, bundle, index, columns, params.thumbnail_size)
        save_png(context.output_dir / "rows" / f"{render.view}_f{render.frame:05d}.png", row)
        rows.append(row)
    context.progress.update((steps - 1) / steps, "contact sheet")
    save_png(context.output_dir / "contact_sheet.png", stack_rows(rows, columns, params.thumbnail_size))
    atomic_write_json(context.output_dir / "summary.json", summarize(context.inputs_dir, bundle, columns))


def contact_row(root: Path, bundle: ConditionBundle, index: int, columns: list[str], height: int) -> Image.Image:
    """One render's passes side by side, scaled to ``height``, with a caption on the left."""
    render = bundle.renders[index]
    width = max(1, round(height * bundle.width / bundle.height))
    row = Image.new("RGB", (_CAPTION_WIDTH + width * len(columns), height), _BACKGROUND)
    ImageDraw.Draw(row).text((4, 4), f"{render.view}\nframe {render.frame}", fill=(230, 230, 230))
    for column, name in enumerate(columns):
        if name in render.passes:
            picture = pass_picture(root, render, name, f"renders[{index}].passes.{name}")
            row.paste(picture.resize((width, height), Image.Resampling.BILINEAR), (_CAPTION_WIDTH + column * width, 0))
    return row


def pass_picture(root: Path, render: Render, name: str, field: str) -> Image.Image:
    """A pass as a viewable RGB picture: depth normalised over the head, normals and canonical
    coordinates mapped from their ranges to colours."""
    path = root / render.passes[name]
    if path.suffix == ".png":
        return _load_png(path, field).convert("RGB")
    values = _load_array(path, field)
    if name == "depth":
        return Image.fromarray(_to_bytes(normalized_depth(values)), "L").convert("RGB")
    if name == "normal":
        return Image.fromarray(_to_bytes((values + 1.0) / 2.0 * np.any(values != 0, axis=-1, keepdims=True)), "RGB")
    if name == "ambient":
        values = np.concatenate([values, np.zeros_like(values[..., :1])], axis=-1)
    return Image.fromarray(_to_bytes((values + 0.5) * np.any(values != 0, axis=-1, keepdims=True)), "RGB")


def normalized_depth(depth: np.ndarray) -> np.ndarray:
    """Near = bright, far = dark, over the pixels that hold depth; 0 (black) elsewhere."""
    inside = depth > 0
    if not inside.any():
        return np.zeros_like(depth)
    near, far = float(depth[inside].min()), float(depth[inside].max())
    scaled = np.where(inside, 1.0 - (depth - near) / max(far - near, 1e-6) * 0.8, 0.0)
    return scaled


def stack_rows(rows: list[Image.Image], columns: list[str], height: int) -> Image.Image:
    header = 16
    width = max(row.width for row in rows)
    sheet = Image.new("RGB", (width, header + height * len(rows)), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    column_width = (width - _CAPTION_WIDTH) // max(1, len(columns))
    for column, name in enumerate(columns):
        draw.text((_CAPTION_WIDTH + column * column_width + 4, 2), name, fill=(230, 230, 230))
    for index, row in enumerate(rows):
        sheet.paste(row, (0, header + index * height))
    return sheet


def summarize(root: Path, bundle: ConditionBundle, columns: list[str]) -> dict:
    """What the bundle holds, with value ranges a user can sanity-check (depth, mask coverage)."""
    depth_ranges = [_depth_range(root / render.passes["depth"]) for render in bundle.renders_with("depth")]
    depth_ranges = [r for r in depth_ranges if r is not None]
    coverage = [_mask_coverage(root / render.passes["mask"]) for render in bundle.renders_with("mask")]
    view_classes: dict[str, int] = {}
    for view in bundle.views:
        view_classes[view.view_class] = view_classes.get(view.view_class, 0) + 1
    return {
        "width": bundle.width,
        "height": bundle.height,
        "views": len(bundle.views),
        "frames": len(bundle.frames),
        "renders": len(bundle.renders),
        "passes": {name: len(bundle.renders_with(name)) for name in columns},
        "view_classes": view_classes,
        "expression_names": bundle.expression_names,
        "depth_range": [min(r[0] for r in depth_ranges), max(r[1] for r in depth_ranges)] if depth_ranges else None,
        "mean_mask_coverage": round(float(np.mean(coverage)), 6) if coverage else None,
        "is_deferred_dataset": bool(bundle.renders) and len(bundle.renders_with("target")) == len(bundle.renders),
    }


def save_png(path: Path, image: Image.Image) -> None:
    atomic_write(path, lambda temp: image.save(temp, format="PNG"))


def _depth_range(path: Path) -> tuple[float, float] | None:
    depth = np.load(path, allow_pickle=False)
    inside = depth[depth > 0]
    return (float(inside.min()), float(inside.max())) if inside.size else None


def _mask_coverage(path: Path) -> float:
    with Image.open(path) as mask:
        return float((np.asarray(mask.convert("L")) > 127).mean())


def _to_bytes(values: np.ndarray) -> np.ndarray:
    return (np.clip(np.nan_to_num(values), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _load_png(path: Path, field: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise FormatError(field, f"{path.name} cannot be decoded ({error})", "render the conditions again") from None


def _load_array(path: Path, field: str) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise FormatError(field, f"{path.name} cannot be read as a .npy array ({error})", "render the conditions again") from None
    if not np.isfinite(values).all():
        raise FormatError(field, f"{path.name} holds NaN or infinite values", "render the conditions again")
    return values.astype(np.float32)
