"""Style-prior checkpoints: ``model.safetensors`` + ``config.json`` of kind ``style-prior``.

The weights hold the denoiser (with the w statistics) and the conv encoder; a CLIP encoder's frozen
weights stay in their own folder, which the config names. Loading is the exact inverse of saving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from blender_addon.formats.errors import FormatError

from ...formats.checkpoint import load_weights, read_checkpoint_config, save_checkpoint
from .config import StylePriorConfig
from .prior import StylePrior

CHECKPOINT_KIND = "style-prior"


def save_style_prior(directory: str | Path, prior: StylePrior, extra: dict[str, Any] | None = None) -> Path:
    """``extra`` records where the prior came from (generator reference, w_dim, training steps)."""
    return save_checkpoint(directory, CHECKPOINT_KIND, prior.config, prior.trainable_state_dict(), extra)


def read_style_prior_info(directory: str | Path) -> tuple[StylePriorConfig, dict[str, Any]]:
    return read_checkpoint_config(directory, CHECKPOINT_KIND, StylePriorConfig)


def load_style_prior(directory: str | Path, device: Any = "cpu", resolve: Callable[[str], Path] = Path) -> tuple[StylePrior, dict[str, Any]]:
    """The prior in eval mode on ``device``, and the checkpoint's extra metadata."""
    config, extra = read_style_prior_info(directory)
    prior = StylePrior(config, resolve)
    weights = load_weights(directory)
    missing, unexpected = prior.load_state_dict(weights, strict=False)
    missing = [name for name in missing if prior.encoder.trainable or not name.startswith("encoder.")]
    if missing or unexpected:
        names = (missing or unexpected)[:3]
        raise FormatError(f"{Path(directory) / 'model.safetensors'}", f"does not match config.json ({'missing' if missing else 'unexpected'} weights: {', '.join(names)})",
                          "the folder mixes files of different runs: train again or copy the whole folder")
    return prior.to(device).eval(), extra
