"""Deferred-renderer checkpoints: the trainable weights + config, on top of a base model from the store when there is one.

``model.safetensors`` holds only what was trained. With the latent-diffusion prior that is the
ControlNet, tri-planes and expression layers; the frozen base is named in the config (``base``) and
loaded from the model store, and its architecture fingerprint is kept in ``extra`` so a different base
is refused before loading. Without a prior it is every weight, and the store is not consulted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blender_addon.formats.errors import FormatError

from ...errors import InvalidInput
from ...formats.checkpoint import load_weights, read_checkpoint_config, save_checkpoint
from ..diffusion_loading import load_base_components
from ..store import ModelStore
from .latent_diffusion import LatentDiffusionRenderer
from .renderer import CHECKPOINT_KIND, DeferredRenderer, DeferredRendererConfig
from .scratch import ScratchRenderer


def build_renderer(config: DeferredRendererConfig, store: ModelStore | None, device: Any = None) -> DeferredRenderer:
    """A fresh (untrained) renderer in float32: on the base model ``config.base`` from ``store`` (latent-diffusion
    prior), or from scratch (no prior; ``store`` may be None)."""
    if config.prior == "none":
        return ScratchRenderer(config).place(device or "cpu")
    if store is None:
        raise InvalidInput(f"the renderer needs its base model {config.base!r}, but no model store was given",
                           "pass the model store (--data-dir) that holds the base model", field="base")
    components = load_base_components(store.resolve(config.base, role="base"), device="cpu")
    renderer = LatentDiffusionRenderer(config, components.unet, components.vae, components.text_encoder,
                                       components.tokenizer, components.scheduler)
    return renderer.place(device or "cpu")


def save_renderer(directory: str | Path, renderer: DeferredRenderer, extra: dict[str, Any] | None = None) -> Path:
    metadata = {"base_fingerprint": renderer.fingerprint, **(extra or {})}
    return save_checkpoint(directory, CHECKPOINT_KIND, renderer.config, renderer.state_dict(), metadata)


def read_renderer_config(directory: str | Path) -> tuple[DeferredRendererConfig, dict[str, Any]]:
    try:
        return read_checkpoint_config(directory, CHECKPOINT_KIND, DeferredRendererConfig)
    except FormatError as error:
        raise InvalidInput.from_format_error(error) from None


def load_renderer(directory: str | Path, store: ModelStore | None, device: Any = None, dtype: Any = None) -> DeferredRenderer:
    """The renderer saved in ``directory``; refuses weights that do not fit the config or the base."""
    import torch

    config, extra = read_renderer_config(directory)
    renderer = build_renderer(config, store, device="cpu")
    check_fingerprint(extra.get("base_fingerprint"), renderer, config.base)
    load_trained_weights(renderer, load_weights(directory), directory)
    return renderer.place(device or "cpu", dtype or torch.float32).eval()


def check_fingerprint(saved: dict[str, Any] | None, renderer: DeferredRenderer, base_name: str) -> None:
    if saved is None:
        return
    current = renderer.fingerprint
    differences = [f"{key}: trained on {saved.get(key)!r}, now {current[key]!r}" for key in current if saved.get(key) != current[key]]
    if differences:
        raise InvalidInput(
            f"the base model {base_name!r} in the store is not the one this checkpoint was trained on ({'; '.join(differences[:3])})",
            f"register the original base model under the name {base_name!r}", field="base")


def load_trained_weights(renderer: DeferredRenderer, weights: dict, directory: str | Path) -> None:
    """Exact load: every tensor present with the shape the config builds, nothing left over."""
    expected = renderer.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = [f"{name} {tuple(weights[name].shape)} vs {tuple(tensor.shape)}" for name, tensor in expected.items()
                   if name in weights and weights[name].shape != tensor.shape]
    if missing or unexpected or wrong_shape:
        problems = [f"{len(missing)} missing (first {missing[0]})" if missing else "",
                    f"{len(unexpected)} unexpected (first {unexpected[0]})" if unexpected else "",
                    f"{len(wrong_shape)} of another shape (first {wrong_shape[0]})" if wrong_shape else ""]
        raise InvalidInput(
            f"the weights in {directory} do not match its config.json: {'; '.join(p for p in problems if p)}",
            "config.json and model.safetensors must come from the same training run; copy the whole run folder",
            field="checkpoint")
    renderer.load_state_dict(weights, strict=True)
