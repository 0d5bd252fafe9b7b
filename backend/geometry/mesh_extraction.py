"""Density grid over the head box -> a closed triangle mesh (marching cubes, largest component,
optional decimation by vertex clustering).

Coordinates stay in head space (+y up, +z towards the face, the box [-0.5, 0.5]^3), which is also
glTF's convention (+y up, +z front), so meshes go into GLB files as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInput
from ..progress import Progress, SilentProgress
from .field import RadianceField


@dataclass
class MeshSettings:
    grid_resolution: int = 256
    level: float = 10.0
    """Iso-level of the density (EG3D's meshes use raw sigma at 10)."""
    fallback_fill: float | None = 0.2
    """When the density never reaches ``level`` (a briefly trained generator), put the surface where
    this fraction of the box lies inside instead, and record it; None refuses such a field."""
    box_size: float = 1.0
    keep_largest_component: bool = True
    max_faces: int | None = 60000
    """Decimate (vertex clustering) to at most this many faces; None keeps every face."""
    points_per_batch: int = 262144


def grid_points(resolution: int, box_size: float) -> np.ndarray:
    """Cell-centred sample points of the box, [R^3, 3], x slowest, z fastest (index order [x, y, z])."""
    axis = ((np.arange(resolution, dtype=np.float32) + 0.5) / resolution - 0.5) * box_size
    xs, ys, zs = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel(), zs.ravel()], axis=1)


def density_grid(field: RadianceField, settings: MeshSettings, progress: Progress | None = None) -> np.ndarray:
    """Density on a grid_resolution^3 grid over the box, [x, y, z] indexed."""
    progress = progress or SilentProgress()
    resolution = settings.grid_resolution
    points = grid_points(resolution, settings.box_size)
    values = np.empty(len(points), dtype=np.float32)
    for start in range(0, len(points), settings.points_per_batch):
        stop = min(start + settings.points_per_batch, len(points))
        values[start:stop] = field.density(points[start:stop])
        progress.update(stop / len(points), "density grid")
    return values.reshape(resolution, resolution, resolution)


def surface_level(grid: np.ndarray, settings: MeshSettings) -> tuple[float, bool]:
    """(iso-level, whether it is the fallback): ``settings.level`` where the density crosses it."""
    low, high = float(np.nanmin(grid)), float(np.nanmax(grid))
    if high > settings.level > low:
        return settings.level, False
    if settings.fallback_fill is not None and high > low:
        level = float(np.nanquantile(grid, 1.0 - settings.fallback_fill))
        if high > level > low:
            return level, True
    raise InvalidInput(f"the density never crosses the level {settings.level} (range {low:.3g}..{high:.3g}): there is no surface",
                       "lower or raise the mesh level, or use a trained checkpoint", field="level")


def extract_mesh(grid: np.ndarray, settings: MeshSettings):
    """Marching cubes on a [x, y, z] density grid; the border is padded below the level so the mesh
    closes. The level used is in ``mesh.metadata`` ('level', 'level_fallback')."""
    import trimesh
    from skimage import measure

    level, fallback = surface_level(grid, settings)
    floor = min(float(np.nanmin(grid)), level) - 1.0
    padded = np.pad(np.nan_to_num(grid, nan=floor), 1, mode="constant", constant_values=floor)
    voxel = settings.box_size / grid.shape[0]
    vertices, faces, _, _ = measure.marching_cubes(padded, level=level, spacing=(voxel, voxel, voxel))
    # Padded index 1 is the first cell centre, at -box/2 + voxel/2.
    vertices = vertices - (settings.box_size / 2 + voxel / 2)
    # skimage winds triangles towards rising values; density rises inwards, so flip them to face out.
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces[:, ::-1], process=True)
    if settings.keep_largest_component:
        mesh = largest_component(mesh)
    if settings.max_faces is not None and len(mesh.faces) > settings.max_faces:
        mesh = decimate_by_clustering(mesh, settings.max_faces)
    mesh.metadata.update(level=level, level_fallback=fallback)
    return mesh


LARGEST_PART_CANDIDATES = 0.9
"""Parts within this share of the largest part's face count are built to compare their faces after hole filling."""


def largest_component(mesh):
    """The part with the most faces, as ``mesh.split`` makes them (faces joined by shared edges, small holes
    filled), with only the parts that can be the largest built: splitting a noisy surface into thousands of
    meshes to keep one took most of the export time. Hole filling adds a few faces, never a tenth of a part."""
    import trimesh

    components = trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(mesh.faces)), min_len=1)
    if len(components) <= 1:
        return mesh
    largest = max(len(component) for component in components)
    candidates = [component for component in components if len(component) >= LARGEST_PART_CANDIDATES * largest]
    parts = mesh.submesh(candidates, repair=True)
    return max(parts, key=lambda part: len(part.faces))


def decimate_by_clustering(mesh, max_faces: int):
    """Merge vertices that share a grid cell, growing the cell until at most ``max_faces`` remain."""
    import trimesh

    extent = float(np.max(mesh.extents))
    cell = extent / np.sqrt(len(mesh.faces) / 2.0) if len(mesh.faces) else extent
    while True:
        keys = np.floor(mesh.vertices / cell).astype(np.int64)
        _, cluster, counts = unique_rows(keys, return_inverse=True, return_counts=True)
        cluster = cluster.ravel()
        centres = np.zeros((len(counts), 3))
        np.add.at(centres, cluster, mesh.vertices)
        centres /= counts[:, None]
        faces = cluster[mesh.faces]
        keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
        faces = unique_rows(faces[keep]) if keep.any() else faces[keep]
        if len(faces) <= max_faces:
            simplified = trimesh.Trimesh(vertices=centres, faces=faces, process=True)
            simplified.remove_unreferenced_vertices()
            return simplified
        cell *= 1.25


def row_codes(rows: np.ndarray) -> np.ndarray | None:
    """One int64 per row of integers, ordered as the rows are lexicographically (so ``np.unique`` on the codes
    sorts like ``np.unique(rows, axis=0)``, several times faster); None when the rows span too much for 64 bits."""
    shifted = rows - rows.min(axis=0)
    spans = shifted.max(axis=0) + 1
    if float(np.prod(spans.astype(np.float64))) >= 2.0 ** 62:
        return None
    codes = np.zeros(len(rows), dtype=np.int64)
    for column in range(rows.shape[1]):
        codes = codes * spans[column] + shifted[:, column]
    return codes


def unique_rows(rows: np.ndarray, return_inverse: bool = False, return_counts: bool = False):
    """``np.unique(rows, axis=0, ...)`` for non-empty integer rows: through :func:`row_codes` when they fit in 64 bits."""
    codes = row_codes(rows)
    if codes is None:
        return np.unique(rows, axis=0, return_inverse=return_inverse, return_counts=return_counts)
    _, first, inverse, counts = np.unique(codes, return_index=True, return_inverse=True, return_counts=True)
    extras = ([inverse.ravel()] if return_inverse else []) + ([counts] if return_counts else [])
    return (rows[first], *extras) if extras else rows[first]


def mesh_from_field(field: RadianceField, settings: MeshSettings, progress: Progress | None = None):
    return extract_mesh(density_grid(field, settings, progress), settings)

