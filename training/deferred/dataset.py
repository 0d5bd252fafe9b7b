"""A deferred dataset for training: a condition bundle whose renders all carry a ``target`` pass.

Samples are random square crops (side a random fraction of the shorter image side, as in
DiffusionAvatars) resized to the training resolution: geometry passes with nearest-neighbour
sampling, so background never blends into the surface, and the target with antialiased bilinear
sampling. Renders are split into training and held-out sets by view and by frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from backend.errors import InvalidInput
from backend.models.deferred.conditions import ConditionTensors, read_render, read_target, require_geometry_passes
from blender_addon.formats.condition_bundle import ConditionBundle, read_bundle
from blender_addon.formats.errors import FormatError


@dataclass(frozen=True)
class HoldOut:
    """Which renders are kept out of training, for validation and evaluation."""

    views: tuple[str, ...] = ()
    frame_stride: int = 0
    """Every ``frame_stride``-th frame (by position in the bundle) is held out; 0 holds out none."""

    def is_held_out(self, bundle: ConditionBundle, view: str, frame: int) -> bool:
        if view in self.views:
            return True
        if self.frame_stride > 0:
            position = [f.index for f in bundle.frames].index(frame)
            return position % self.frame_stride == self.frame_stride - 1
        return False


def load_deferred_bundle(root: Path) -> ConditionBundle:
    try:
        bundle = read_bundle(root)
        require_geometry_passes(bundle, with_target=True)
    except FormatError as error:
        raise InvalidInput.from_format_error(error) from None
    return bundle


def split_renders(bundle: ConditionBundle, hold_out: HoldOut) -> tuple[list[int], list[int]]:
    """Indices into ``bundle.renders``: (training, held out). Refuses holding out everything."""
    unknown = [view for view in hold_out.views if view not in {v.id for v in bundle.views}]
    if unknown:
        raise InvalidInput(f"held-out view {unknown[0]!r} is not in the dataset",
                           f"views in the dataset: {', '.join(v.id for v in bundle.views)}", field="holdout_views")
    training, held_out = [], []
    for index, render in enumerate(bundle.renders):
        (held_out if hold_out.is_held_out(bundle, render.view, render.frame) else training).append(index)
    if not training:
        raise InvalidInput("every render of the dataset is held out", "hold out fewer views or a larger frame stride", field="holdout_views")
    return training, held_out


class DeferredDataset:
    def __init__(self, root: str | Path, expression_names: tuple[str, ...], bundle: ConditionBundle | None = None) -> None:
        self.root = Path(root)
        self.bundle = bundle or load_deferred_bundle(self.root)
        self.expression_names = expression_names

    def __len__(self) -> int:
        return len(self.bundle.renders)

    def full(self, index: int) -> tuple[ConditionTensors, torch.Tensor]:
        """Render ``index`` uncropped: conditions and target (1, 3, H, W) in [-1, 1]."""
        render = self.bundle.renders[index]
        try:
            conditions = read_render(self.root, self.bundle, render, self.expression_names)
            target = read_target(self.root / render.passes["target"], (self.bundle.height, self.bundle.width),
                                 f"renders[{index}].passes.target")
        except FormatError as error:
            raise InvalidInput.from_format_error(error) from None
        return conditions, torch.from_numpy(target).permute(2, 0, 1)[None]

    def random_crop(self, index: int, resolution: int, crop_min: float, generator: torch.Generator) -> tuple[ConditionTensors, torch.Tensor]:
        """A random square crop of render ``index``, resized to ``resolution``."""
        conditions, target = self.full(index)
        height, width = target.shape[-2:]
        fraction = crop_min + (1.0 - crop_min) * torch.rand((), generator=generator).item()
        side = max(1, int(round(fraction * min(height, width))))
        top = int(torch.randint(0, height - side + 1, (), generator=generator))
        left = int(torch.randint(0, width - side + 1, (), generator=generator))
        window = (slice(top, top + side), slice(left, left + side))
        return _crop_conditions(conditions, window, resolution), _resize_target(target[..., window[0], window[1]], resolution)


def _crop_conditions(conditions: ConditionTensors, window: tuple[slice, slice], resolution: int) -> ConditionTensors:
    rows, cols = window

    def nearest(image: torch.Tensor) -> torch.Tensor:
        channels_first = image.permute(0, 3, 1, 2) if image.ndim == 4 else image[:, None]
        resized = F.interpolate(channels_first, size=(resolution, resolution), mode="nearest-exact")
        return resized.permute(0, 2, 3, 1) if image.ndim == 4 else resized[:, 0]

    return ConditionTensors(
        depth=nearest(conditions.depth[:, rows, cols]),
        canonical=nearest(conditions.canonical[:, rows, cols]),
        normal=nearest(conditions.normal[:, rows, cols]),
        mask=nearest(conditions.mask[:, rows, cols]),
        expression=conditions.expression,
        ambient=None if conditions.ambient is None else nearest(conditions.ambient[:, rows, cols]),
    )


def _resize_target(target: torch.Tensor, resolution: int) -> torch.Tensor:
    if target.shape[-1] == resolution and target.shape[-2] == resolution:
        return target
    return F.interpolate(target, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False).clamp(-1.0, 1.0)
