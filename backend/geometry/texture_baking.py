"""UV atlas (xatlas) and a texture baked by querying the colour field at each texel's surface point.

UVs follow trimesh's convention (origin at the image's bottom-left); texel (row r, column c) has
its centre at u = (c + 0.5) / size, v = 1 - (r + 0.5) / size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..progress import Progress, SilentProgress
from .field import RadianceField, evaluate_in_batches


@dataclass
class TextureSettings:
    size: int = 1024
    padding_texels: int = 4
    """Colours bleed this many texels past each chart's border so filtering shows no seams."""
    points_per_batch: int = 262144


@dataclass
class UnwrappedMesh:
    vertices: np.ndarray  # [V, 3] float
    faces: np.ndarray  # [F, 3] int
    uvs: np.ndarray  # [V, 2] in [0, 1]


def unwrap(vertices: np.ndarray, faces: np.ndarray) -> UnwrappedMesh:
    """Cut and flatten the mesh into one atlas; vertices on seams are duplicated."""
    import xatlas

    mapping, new_faces, uvs = xatlas.parametrize(vertices.astype(np.float32), faces.astype(np.uint32))
    return UnwrappedMesh(vertices[mapping].astype(np.float32), new_faces.astype(np.int64), uvs.astype(np.float32))


def rasterize_uv(mesh: UnwrappedMesh, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For every texel covered by a triangle in UV space: its flat index and 3D surface point.

    All triangles' bounding boxes are enumerated at once and each candidate texel centre is kept
    when its barycentric coordinates are all >= 0.
    """
    corners = np.stack([mesh.uvs[:, 0] * size, (1.0 - mesh.uvs[:, 1]) * size], axis=1)[mesh.faces]  # [F, 3, 2] pixels
    low = np.clip(np.floor(corners.min(axis=1) - 0.5).astype(np.int64), 0, size - 1)
    high = np.clip(np.ceil(corners.max(axis=1) - 0.5).astype(np.int64), 0, size - 1)
    widths, heights = high[:, 0] - low[:, 0] + 1, high[:, 1] - low[:, 1] + 1
    counts = widths * heights
    face = np.repeat(np.arange(len(mesh.faces)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    column = low[face, 0] + local % widths[face]
    row = low[face, 1] + local // widths[face]
    bary = barycentric(corners[face], np.stack([column + 0.5, row + 0.5], axis=1))
    inside = (bary >= -1e-6).all(axis=1)
    face, bary, flat = face[inside], bary[inside], (row * size + column)[inside]
    points = np.einsum("nk,nkd->nd", bary, mesh.vertices[mesh.faces[face]])
    flat, first = np.unique(flat, return_index=True)
    return flat, points[first].astype(np.float32)


def barycentric(triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates [N, 3] of 2D points [N, 2] in triangles [N, 3, 2]; degenerate -> -1."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    denominator = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    safe = np.where(np.abs(denominator) < 1e-12, 1.0, denominator)
    beta = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / safe
    gamma = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / safe
    result = np.stack([1.0 - beta - gamma, beta, gamma], axis=1)
    result[np.abs(denominator) < 1e-12] = -1.0
    return result


def dilate(texture: np.ndarray, filled: np.ndarray, steps: int) -> np.ndarray:
    """Grow filled texels outwards: each empty texel next to filled ones takes their mean colour.
    Neighbours are taken within the image only (never wrapped around from the opposite border)."""
    texture, filled = texture.copy(), filled.copy()
    height, width = filled.shape
    for _ in range(steps):
        padded_colour = np.pad(texture * filled[..., None], ((1, 1), (1, 1), (0, 0)))
        padded_filled = np.pad(filled.astype(np.float32), 1)
        total = np.zeros_like(texture)
        count = np.zeros(filled.shape, dtype=np.float32)
        for row, col in ((0, 1), (2, 1), (1, 0), (1, 2)):
            total += padded_colour[row:row + height, col:col + width]
            count += padded_filled[row:row + height, col:col + width]
        grow = (~filled) & (count > 0)
        texture[grow] = total[grow] / count[grow, None]
        filled = filled | grow
    return texture


def bake_texture(field: RadianceField, mesh: UnwrappedMesh, settings: TextureSettings, progress: Progress | None = None) -> np.ndarray:
    """RGB texture [size, size, 3] uint8 of the field's colour on the mesh surface."""
    progress = progress or SilentProgress()
    size = settings.size
    flat, points = rasterize_uv(mesh, size)
    progress.update(0.3, "texture: rasterized UV atlas")
    colours = evaluate_in_batches(field.color, points, settings.points_per_batch)
    progress.update(0.9, "texture: coloured texels")
    texture = np.zeros((size * size, 3), dtype=np.float32)
    texture[flat] = np.clip(colours, 0.0, 1.0)
    filled = np.zeros(size * size, dtype=bool)
    filled[flat] = True
    texture = dilate(texture.reshape(size, size, 3), filled.reshape(size, size), settings.padding_texels)
    progress.update(1.0, "texture: done")
    return np.round(texture * 255.0).astype(np.uint8)
