"""ControlNet condition images made from a condition bundle's passes, in the conventions the
public ControlNets were trained on.

- pose: the bundle's OpenPose-style skeleton PNG, used as it is (drawn from the rig, no detector).
- depth: MiDaS-like, brighter is nearer: inside the head mask ``0.25 + 0.75 * (far - z) / (far - near)``
  over the head's own depth range, black outside.
- normal: ControlNet 1.1 normalbae's convention, "blue is front, red is left, green is top":
  RGB = (n + 1) / 2 with x towards the image's left, y up, z towards the viewer (the bundle's
  OpenCV camera axes are x right, y down, z away, so all three flip), black outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from blender_addon.formats.condition_bundle import ConditionBundle, Render
from blender_addon.formats.errors import FormatError

CONTROL_KINDS = ("pose", "depth", "normal")


@dataclass
class RenderConditions:
    """The control images of one render at the output resolution, plus what pose confidence needs."""

    controls: dict[str, Image.Image]
    mask: np.ndarray
    depth: np.ndarray | None


def check_bundle_for_controls(bundle: ConditionBundle, kinds: list[str]) -> None:
    """Every render must carry each requested pass, and a mask or depth for the pose confidence."""
    if bundle.width != bundle.height:
        raise FormatError("width", f"conditions are {bundle.width}x{bundle.height}; multi-view generation needs square renders",
                          "render the conditions with equal width and height")
    for kind in kinds:
        if kind not in CONTROL_KINDS:
            raise FormatError("controlnets", f"unknown control {kind!r}; use {', '.join(CONTROL_KINDS)}")
        bundle.require_pass(kind, f"render the conditions again with the '{kind}' pass, or drop the {kind} ControlNet")
    without_mask = [r for r in bundle.renders if "mask" not in r.passes and "depth" not in r.passes]
    if without_mask:
        raise FormatError("renders[].passes.mask", f"{len(without_mask)} renders have neither a mask nor a depth pass",
                          "render the conditions with the mask pass (pose confidence compares images with it)")


def load_render_conditions(root: Path, render: Render, kinds: list[str], resolution: int) -> RenderConditions:
    depth = _load_array(root, render, "depth") if "depth" in render.passes else None
    mask = _load_mask(root, render) if "mask" in render.passes else depth > 0
    controls = {}
    for kind in kinds:
        if kind == "pose":
            image = _open_image(root / render.passes["pose"], "RGB")
        elif kind == "depth":
            image = depth_to_image(depth, mask)
        else:
            image = normal_to_image(_load_array(root, render, "normal"), mask)
        controls[kind] = image.resize((resolution, resolution), Image.BILINEAR)
    mask_small = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((resolution, resolution), Image.NEAREST)) > 127
    depth_small = None
    if depth is not None:
        depth_small = np.asarray(Image.fromarray(depth.astype(np.float32), mode="F").resize((resolution, resolution), Image.NEAREST))
    return RenderConditions(controls, mask_small, depth_small)


def depth_to_image(depth: np.ndarray, mask: np.ndarray) -> Image.Image:
    values = np.zeros(depth.shape, np.float32)
    if mask.any():
        near, far = float(depth[mask].min()), float(depth[mask].max())
        values[mask] = 0.25 + 0.75 * (far - depth[mask]) / max(far - near, 1e-6)
    return Image.fromarray((np.clip(values, 0, 1) * 255).round().astype(np.uint8)).convert("RGB")


def normal_to_image(normal: np.ndarray, mask: np.ndarray) -> Image.Image:
    flipped = -normal
    rgb = np.where(mask[..., None], (flipped + 1.0) * 0.5, 0.0)
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))


def _open_image(path: Path, mode: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, ValueError) as error:
        raise FormatError(str(path.name), f"cannot be read as an image: {error}") from None


def _load_mask(root: Path, render: Render) -> np.ndarray:
    return np.asarray(_open_image(root / render.passes["mask"], "L")) > 127


def _load_array(root: Path, render: Render, name: str) -> np.ndarray:
    path = root / render.passes[name]
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise FormatError(f"{render.view}/f{render.frame}.{name}", f"{path.name} is not a readable .npy array: {error}") from None
    expected = 2 if name == "depth" else 3
    if array.ndim != expected or not np.isfinite(array).all():
        raise FormatError(f"{render.view}/f{render.frame}.{name}", f"must be a finite {expected}-D float array, got shape {array.shape}")
    return array.astype(np.float32)
