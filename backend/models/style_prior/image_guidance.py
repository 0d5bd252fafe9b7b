"""Image-guided avatars: reference image -> style prior -> one w, which replaces the mapping network.

``ImageGuidance.predict`` gives the w that ``backend.avatars`` renders and exports like any other
style code; ``write_record`` adds what seed-based generation does not have: ``predicted_w.npy``
(usable with ``generate --w``), ``reference.png`` (the square the encoder saw, so a bad crop is
visible) and ``style_prior.json`` (which prior, image, steps, guidance and seed made the w).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from blender_addon.formats.files import atomic_write, atomic_write_json

from ...errors import InvalidInput
from .checkpoint import load_style_prior
from .prior import DEFAULT_GUIDANCE_SCALE, DEFAULT_SAMPLING_STEPS, StylePrior
from .reference_image import BLACK, WHITE, load_reference_image

PREDICTED_W_NAME = "predicted_w.npy"
REFERENCE_NAME = "reference.png"
RECORD_NAME = "style_prior.json"


@dataclass
class ImageGuidance:
    style_prior: str
    """The prior's run folder, or in a job the reference it was resolved from ('job:<id>')."""
    image: str
    steps: int = DEFAULT_SAMPLING_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    """0: ignore the image (the prior's unconditional samples); 1: the plain conditional model;
    above 1: follow the image more closely at the cost of variety."""
    seed: int = 0
    """Different seeds give different avatars that all resemble the image."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.steps > 1000:
            raise InvalidInput(f"steps must lie in 1..1000, got {self.steps}", "25 steps are usually enough", field="prior_steps")
        if not 0.0 <= self.guidance_scale <= 20.0:
            raise InvalidInput(f"guidance scale must lie in 0..20, got {self.guidance_scale}", "try 1 to 3", field="guidance_scale")


@dataclass
class GuidedStyle:
    w: np.ndarray
    """[w_dim]: the single style code, broadcast to every synthesis layer by the generator."""
    reference: torch.Tensor
    """[1, 3, S, S] in [-1, 1]: the encoder's input."""
    record: dict[str, Any]


def predict_w(prior: StylePrior, guidance: ImageGuidance, image_path: Path, on_step: Callable[[int, int], None] | None = None,
              background: tuple[float, float, float] = WHITE) -> GuidedStyle:
    """Sample a w for the reference image at ``image_path`` (checked: see reference_image.py); its
    transparent parts become ``background``, which should be the generator's (``background_of``)."""
    device = prior.denoiser.clip_mean.device
    reference = load_reference_image(image_path, prior.encoder.image_size, background, field="image")
    with torch.no_grad():
        condition = prior.embed(reference.to(device))
        w = prior.sample(condition, steps=guidance.steps, guidance_scale=guidance.guidance_scale, seed=guidance.seed, on_step=on_step)
    record = {**asdict(guidance), "image": Path(guidance.image).name, "encoder": prior.config.encoder.kind, "w_dim": prior.config.w_dim}
    return GuidedStyle(w=w[0].float().cpu().numpy(), reference=reference, record=record)


def load_prior_for_generator(directory: Path, generator_w_dim: int, device: Any, resolve: Callable[[str], Path] = Path) -> StylePrior:
    """The prior in ``directory``, refused clearly when it was trained for a generator of another w size."""
    prior, _ = load_style_prior(directory, device, resolve)
    if prior.config.w_dim != generator_w_dim:
        raise InvalidInput(f"the style prior predicts w of size {prior.config.w_dim} but the generator uses {generator_w_dim}",
                           "pass the style prior trained for this generator ('train style-prior --generator' with this run)",
                           field="style_prior")
    return prior


def write_record(out_dir: str | Path, style: GuidedStyle) -> list[str]:
    """Write predicted_w.npy, reference.png and style_prior.json (atomically); returns their names."""
    from PIL import Image

    out_dir = Path(out_dir)
    atomic_write(out_dir / PREDICTED_W_NAME, lambda temp: np.save(temp, style.w.astype(np.float32), allow_pickle=False))
    pixels = ((style.reference[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    atomic_write(out_dir / REFERENCE_NAME, lambda temp: Image.fromarray(pixels, "RGB").save(temp, format="PNG"))
    atomic_write_json(out_dir / RECORD_NAME, {**style.record, "w": style.w.tolist()})
    return [PREDICTED_W_NAME, REFERENCE_NAME, RECORD_NAME]


def background_of(generator) -> tuple[float, float, float]:
    """The colour a generator renders where there is no head: what its training pairs show there."""
    return WHITE if generator.config.white_background else BLACK


def guided_style_for_generator(generator, guidance: ImageGuidance, style_prior_dir: Path, image_path: Path,
                               resolve: Callable[[str], Path] = Path) -> GuidedStyle:
    """The whole image-guided step for ``generate``: check inputs, load the prior beside the generator, predict w."""
    device = next(generator.parameters()).device
    prior = load_prior_for_generator(Path(style_prior_dir), generator.config.w_dim, device, resolve)
    return predict_w(prior, guidance, Path(image_path), background=background_of(generator))


def uploaded_reference(inputs_dir: Path | None, name: str) -> Path:
    """The reference image ``name`` inside a job's uploaded bundle; names may not leave the upload."""
    if inputs_dir is None:
        raise InvalidInput("image-guided generation needs the reference image uploaded with the job",
                           "send the request as multipart with a 'bundle' zip holding the image", field="bundle")
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not name:
        raise InvalidInput(f"{name!r} is not a file name inside the upload", "name the image by its path inside the zip, e.g. 'reference.png'",
                           field="reference_image")
    path = Path(inputs_dir) / relative
    if not path.is_file():
        raise InvalidInput(f"the upload holds no {name}", "put the reference image in the uploaded zip under that name", field="reference_image")
    return path
