"""Painted images matted onto the background the 3D GAN renders on.

Stable Diffusion paints a background of its own (a studio wall, a gradient, scenery); the tri-plane
generator renders the head over a flat colour. Trained on the painted backgrounds, the generator can
only explain them with density floating around the head, and the head turns to fog. So each kept
image is composited over the generator's background with the rendered head mask of its view,
grown a little (painted hair and stylized shapes reach past the proxy's silhouette) and feathered.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

GROWTH_FRACTION = 0.03
"""How far the mask grows, as a fraction of the image size."""
FEATHER_FRACTION = 0.01
"""The soft edge's Gaussian sigma, as a fraction of the image size."""


def background_colour(background: str) -> float:
    if background not in ("black", "white"):
        raise ValueError(f"background must be black or white to have a colour, got {background!r}")
    return 1.0 if background == "white" else 0.0


def matte_weights(mask: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1]: 1 on the head mask, fading to 0 over the grown, feathered band around it."""
    size = max(mask.shape)
    head = mask > 0.5
    grown = ndimage.binary_dilation(head, iterations=max(1, int(round(GROWTH_FRACTION * size))))
    soft = ndimage.gaussian_filter(grown.astype(np.float32), sigma=max(FEATHER_FRACTION * size, 0.5))
    return np.clip(np.maximum(soft, head), 0.0, 1.0)


def matte_image(pixels: np.ndarray, mask: np.ndarray, background: str) -> np.ndarray:
    """pixels [H, W, 3] in [0, 1] composited over ``background`` with the view's head mask [H, W]."""
    if background == "keep":
        return pixels
    if mask.shape != pixels.shape[:2]:
        raise ValueError(f"mask {mask.shape} and image {pixels.shape[:2]} differ in size")
    alpha = matte_weights(mask)[..., None]
    return pixels * alpha + background_colour(background) * (1.0 - alpha)
