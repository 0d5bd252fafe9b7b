"""What the deferred renderer reads per render from a condition bundle, as tensors.

The pass files are those documented in blender_addon/formats/condition_bundle.py: depth, normal
and canonical ``.npy`` arrays, ``mask.png`` and (in a deferred dataset) ``target.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blender_addon.formats.condition_bundle import ConditionBundle, Render
from blender_addon.formats.errors import FormatError

GEOMETRY_PASSES = ("depth", "canonical", "normal", "mask")
_MISSING_PASS_HINTS = {
    "canonical": "render the conditions with the 'canonical' pass enabled (the rig's rest-pose positions): "
                 "the deferred renderer looks its learned features up at them",
    "depth": "render the conditions with the 'depth' pass enabled",
    "normal": "render the conditions with the 'normal' pass enabled",
    "mask": "render the conditions with the 'mask' pass enabled",
    "target": "a deferred dataset needs the detailed character rendered as the 'target' pass of every render",
    "ambient": "this renderer was trained on a neural-head (NPHM) proxy: render the proxy's 'ambient' pass too",
}


@dataclass
class ConditionTensors:
    """A batch of renders' proxy passes and expression codes (float32)."""

    depth: torch.Tensor
    """(B, H, W) camera-space depth, head units."""
    canonical: torch.Tensor
    """(B, H, W, 3) rest-pose positions, head space."""
    normal: torch.Tensor
    """(B, H, W, 3) unit normals, camera axes."""
    mask: torch.Tensor
    """(B, H, W) 1 on the head, 0 elsewhere."""
    expression: torch.Tensor
    """(B, code length) expression codes in the checkpoint's layout order."""
    ambient: torch.Tensor | None = None
    """(B, H, W, A) a neural-head proxy's ambient coordinates; None for a rig."""

    def to(self, device, dtype=torch.float32) -> "ConditionTensors":
        return ConditionTensors(*(None if getattr(self, name) is None else getattr(self, name).to(device=device, dtype=dtype)
                                  for name in _FIELDS))

    @classmethod
    def stack(cls, items: list["ConditionTensors"]) -> "ConditionTensors":
        return cls(*(None if getattr(items[0], name) is None else torch.cat([getattr(item, name) for item in items]) for name in _FIELDS))


_FIELDS = ("depth", "canonical", "normal", "mask", "expression", "ambient")


def require_geometry_passes(bundle: ConditionBundle, with_target: bool = False, with_ambient: bool = False) -> None:
    """Refuse a bundle lacking any pass the renderer needs, naming the pass and how to produce it."""
    for name in GEOMETRY_PASSES + (("target",) if with_target else ()) + (("ambient",) if with_ambient else ()):
        bundle.require_pass(name, _MISSING_PASS_HINTS[name])


def expression_reorder(bundle_names: list[str], layout: tuple[str, ...]) -> list[int]:
    """Indices that put a bundle's expression codes into the checkpoint's layout order.

    The same names in another order are reordered; missing or unknown names are refused.
    """
    missing = [name for name in layout if name not in bundle_names]
    extra = [name for name in bundle_names if name not in layout]
    if missing or extra:
        details = "; ".join(part for part in (
            f"missing {', '.join(missing[:5])}" if missing else "",
            f"unknown {', '.join(extra[:5])}" if extra else "") if part)
        raise FormatError(
            "expression_names",
            f"the bundle's expression layout ({len(bundle_names)} entries) does not match the checkpoint's "
            f"({len(layout)} entries): {details}",
            "export the animation from the rig the renderer was trained on (same shape keys and face bones)",
        )
    return [bundle_names.index(name) for name in layout]


def read_render(root: Path, bundle: ConditionBundle, render: Render, layout: tuple[str, ...]) -> ConditionTensors:
    """One render's passes as a batch of one, checked for shape and finiteness."""
    where = f"renders[{bundle.renders.index(render)}]"
    shape = (bundle.height, bundle.width)
    depth = _read_array(root / render.passes["depth"], shape, f"{where}.passes.depth")
    canonical = _read_array(root / render.passes["canonical"], shape + (3,), f"{where}.passes.canonical")
    normal = _read_array(root / render.passes["normal"], shape + (3,), f"{where}.passes.normal")
    mask = read_mask(root / render.passes["mask"], shape, f"{where}.passes.mask")
    order = expression_reorder(bundle.expression_names, layout)
    code = [bundle.frame(render.frame).expression[index] for index in order]
    ambient = None
    if "ambient" in render.passes:
        ambient = torch.from_numpy(_read_array(root / render.passes["ambient"], shape + (2,), f"{where}.passes.ambient"))[None]
    return ConditionTensors(
        torch.from_numpy(depth)[None], torch.from_numpy(canonical)[None], torch.from_numpy(normal)[None],
        torch.from_numpy(mask)[None], torch.tensor([code], dtype=torch.float32), ambient,
    )


def _read_array(path: Path, shape: tuple[int, ...], field: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise FormatError(field, f"{path.name} is not a readable .npy array ({error})") from None
    if array.shape != shape:
        raise FormatError(field, f"{path.name} has shape {array.shape}, expected {shape} (height, width[, 3])",
                          "render every pass at the bundle's width and height")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise FormatError(field, f"{path.name} holds NaN or infinite values", "write 0 outside the mask")
    return array


def read_mask(path: Path, shape: tuple[int, int], field: str) -> np.ndarray:
    return (_read_image(path, "L", shape, field) > 127).astype(np.float32)


def read_target(path: Path, shape: tuple[int, int], field: str) -> np.ndarray:
    """(H, W, 3) in [-1, 1]."""
    return _read_image(path, "RGB", shape, field).astype(np.float32) / 127.5 - 1.0


def _read_image(path: Path, mode: str, shape: tuple[int, int], field: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert(mode))
    except (OSError, UnidentifiedImageError) as error:
        raise FormatError(field, f"{path.name} is not a readable image ({error})") from None
    if array.shape[:2] != shape:
        raise FormatError(field, f"{path.name} is {array.shape[1]}x{array.shape[0]}, expected {shape[1]}x{shape[0]}",
                          "render every pass at the bundle's width and height")
    return array
