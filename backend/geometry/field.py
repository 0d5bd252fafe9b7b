"""What mesh export needs from a 3D model: density and colour at head-space points."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class RadianceField(Protocol):
    def density(self, points: np.ndarray) -> np.ndarray:
        """points [N, 3] (float32, head space) -> density [N]; the surface is where it crosses the level."""

    def color(self, points: np.ndarray) -> np.ndarray:
        """points [N, 3] -> RGB [N, 3] in [0, 1], as image colours (sRGB, what the glTF texture holds)."""


def evaluate_in_batches(function, points: np.ndarray, batch_size: int) -> np.ndarray:
    """Evaluate a point function over [N, 3] points in chunks, to bound memory."""
    chunks = [function(points[start:start + batch_size]) for start in range(0, len(points), batch_size)]
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0,), dtype=np.float32)
