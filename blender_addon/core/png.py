"""A minimal PNG writer (8-bit grey, RGB or RGBA) with the standard library, for pass images.

Blender's Python has no PIL; numpy gives the pixels and zlib compresses them.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..formats.files import atomic_write_bytes

_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 array (H, W) or (H, W, C) with C in 1, 3, 4; row 0 is the top."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    if channels not in _COLOUR_TYPES:
        raise ValueError(f"PNG pixels need 1, 3 or 4 channels, got {channels}")
    rows = np.concatenate([np.zeros((height, 1), dtype=np.uint8), array.reshape(height, width * channels)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b"")


def write_png(path: str | Path, pixels: np.ndarray) -> Path:
    return atomic_write_bytes(path, encode_png(pixels))
