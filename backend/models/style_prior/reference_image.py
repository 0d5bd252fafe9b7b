"""Reading the artist's reference image for image-guided generation, with clear refusals.

What is accepted and how it is made into the encoder's input:
- any image Pillow reads (PNG, JPEG, WebP, TIFF, BMP, the first frame of a GIF);
- grayscale (8 or 16 bit) and palette images are converted to RGB;
- an alpha channel is composited over the generator's background colour (white by default), so a
  cut-out character matches the generator's renders; a fully transparent image is refused;
- non-square images are centre-cropped to a square (the head is usually centred), but an aspect
  ratio beyond 2:1 is refused because the crop would cut most of the picture away;
- the square is resized to the encoder's input size; an image whose shorter side is below
  ``MIN_SIDE_PIXELS`` is refused, as it holds too little to guide anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import InvalidInput

MIN_SIDE_PIXELS = 16
MAX_ASPECT_RATIO = 2.0
WHITE = (1.0, 1.0, 1.0)
BLACK = (0.0, 0.0, 0.0)


def load_reference_image(path: str | Path, size: int, background: tuple[float, float, float] = WHITE, field: str = "image") -> torch.Tensor:
    """The image at ``path`` as a tensor [1, 3, size, size] in [-1, 1]; InvalidInput naming ``field`` otherwise."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no file at {path}", "pass the path of a PNG or JPEG reference image", field=field)
    try:
        with Image.open(path) as image:
            image.seek(0)
            rgba = _to_rgba_array(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as error:
        raise InvalidInput(f"{path.name} is not an image that can be read ({error})",
                           "pass a PNG, JPEG or WebP image of the character", field=field) from None
    return reference_tensor(rgba, size, background, field)


def reference_tensor(rgba: np.ndarray, size: int, background: tuple[float, float, float] = WHITE, field: str = "image") -> torch.Tensor:
    """[H, W, 4] floats in [0, 1] -> checked, composited, cropped, resized [1, 3, size, size] in [-1, 1]."""
    import torch.nn.functional as F

    height, width = rgba.shape[:2]
    if min(height, width) < MIN_SIDE_PIXELS:
        raise InvalidInput(f"the image is {width}x{height} pixels, too small to guide generation",
                           f"use an image at least {MIN_SIDE_PIXELS} pixels on each side ({size}x{size} or larger is best)", field=field)
    if max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        raise InvalidInput(f"the image is {width}x{height} pixels; its centre square would keep too little of it",
                           "crop it to the character's head (roughly square) and try again", field=field)
    alpha = rgba[..., 3:4]
    if float(alpha.max()) <= 0.0:
        raise InvalidInput("the image is fully transparent", "export it with its colours, or without an alpha channel", field=field)
    rgb = rgba[..., :3] * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha)
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = torch.from_numpy(np.ascontiguousarray(rgb[top:top + side, left:left + side])).permute(2, 0, 1)[None]
    square = F.interpolate(square, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    return (square.clamp(0.0, 1.0) * 2.0 - 1.0).float()


def _to_rgba_array(image) -> np.ndarray:
    """Any Pillow mode -> [H, W, 4] float32 in [0, 1] (16-bit and float grayscale keep their range)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if values.max() > 255 or image.mode.startswith("I;16") else 255.0
        gray = np.clip(values / scale, 0.0, 1.0)
        return np.dstack([gray, gray, gray, np.ones_like(gray)])
    if image.mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.dstack([gray, gray, gray, np.ones_like(gray)])
    return np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
