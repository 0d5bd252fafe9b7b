"""A small deferred renderer trained from scratch (no prior, pixel space) with fixed settings: for
defaults the project ships and for benchmarks, where the same call must give the same model.

``train_small_renderer(data_dir, out_dir)`` trains on a deferred dataset folder (what the add-on's
"render training data" writes) at the dataset's own size, which should be small (32-96 px). The
settings are ``SMALL_RENDERER`` (see its fields); ``steps``, ``mode`` and whether the expression code also enters
the timestep embedding (``ScratchUNetConfig.expression_in_time_embedding``; for a proxy that does not show the
expression) may be changed per call.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from backend.errors import InvalidInput
from backend.models.deferred.channels import ChannelLayout
from backend.models.deferred.scratch_unet import ScratchUNetConfig
from backend.progress import Progress, SilentProgress

from .dataset import HoldOut, load_deferred_bundle
from .trainer import DeferredTrainOptions, TrainResult, train_deferred

SMALL_RENDERER = DeferredTrainOptions(
    prior="none", mode="direct", scratch_unet=ScratchUNetConfig(block_out_channels=(32, 64, 96), attention_from_level=2),
    steps=1500, batch_size=8, learning_rate_networks=1e-3, learning_rate_planes=1e-2,
    learning_rate_schedule="cosine", warmup_steps=50, crop_min=0.85, mixed_precision="no",
    channels=ChannelLayout(triplane_channels=8), triplane_resolution=64, expression_tokens=4,
    checkpoint_every=250, validate_every=1000, validation_renders=4, seed=181998,
)
"""The fixed settings; ``resolution`` is the dataset's (its shorter side, down to a multiple of 4)."""
MAX_SIDE = 128
"""Larger datasets are refused: pixel-space training at more than this is not what these settings are for."""


def train_small_renderer(data_dir: str | Path, out_dir: str | Path, progress: Progress | None = None, device: Any = "cpu",
                         mode: str = "direct", steps: int | None = None, hold_out: HoldOut = HoldOut(),
                         expression_in_time_embedding: bool = False) -> TrainResult:
    """Train (or resume) the small from-scratch renderer of ``SMALL_RENDERER`` on ``data_dir`` into ``out_dir``."""
    bundle = load_deferred_bundle(Path(data_dir))
    multiple = SMALL_RENDERER.scratch_unet.size_multiple
    side = min(bundle.width, bundle.height) // multiple * multiple
    if not multiple <= side <= MAX_SIDE or bundle.width % multiple or bundle.height % multiple:
        raise InvalidInput(f"the dataset's {bundle.width}x{bundle.height} images do not suit the small renderer",
                           f"render the training data at most {MAX_SIDE} px on a side, in multiples of {multiple} (e.g. 64x64)", field="data")
    architecture = replace(SMALL_RENDERER.scratch_unet, expression_in_time_embedding=expression_in_time_embedding)
    options = replace(SMALL_RENDERER, scratch_unet=architecture, mode=mode, resolution=side, steps=steps or SMALL_RENDERER.steps,
                      hold_out=hold_out)
    return train_deferred(Path(data_dir), Path(out_dir), options, None, progress or SilentProgress(), device)
