"""Where a ray meets a character's evaluated (posed) surface, as vertex weights a vertex group can hold.

A landmark group's position is the weighted mean of its vertices, so a hit stored as the corners of
the triangle it lands in, weighted by their barycentric coordinates, reproduces the hit point exactly
(on a low-poly mesh the nearest vertex can be centimetres off) and follows the surface when it deforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import bpy
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from .mesh_points import world_vertices


@dataclass
class SurfaceHit:
    mesh: bpy.types.Object
    point: np.ndarray
    vertices: list[int]
    weights: list[float]
    distance: float


def _barycentric(point: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of ``point`` (projected) in the triangle ``corners`` (3, 3), clamped."""
    a, b, c = corners
    v0, v1, v2 = b - a, c - a, point - a
    d00, d01, d11, d20, d21 = v0 @ v0, v0 @ v1, v1 @ v1, v2 @ v0, v2 @ v1
    denominator = d00 * d11 - d01 * d01
    if abs(denominator) < 1e-20:
        return np.array([1.0, 0.0, 0.0])
    v = (d11 * d20 - d01 * d21) / denominator
    w = (d00 * d21 - d01 * d20) / denominator
    weights = np.clip(np.array([1.0 - v - w, v, w]), 0.0, None)
    return weights / weights.sum() if weights.sum() > 0 else np.array([1.0, 0.0, 0.0])


class SurfaceIndex:
    """BVH trees of the evaluated meshes, built once for many rays. Meshes whose modifiers change
    the vertex count (their evaluated vertices are not the mesh's own) are left out."""

    def __init__(self, meshes: Sequence[bpy.types.Object], depsgraph: bpy.types.Depsgraph) -> None:
        self.entries: list[tuple[bpy.types.Object, np.ndarray, list[tuple[int, ...]], BVHTree]] = []
        for mesh_object in meshes:
            positions = world_vertices(mesh_object, depsgraph)
            polygons = [tuple(polygon.vertices) for polygon in mesh_object.data.polygons]
            if len(positions) != len(mesh_object.data.vertices) or not polygons:
                continue
            self.entries.append((mesh_object, positions, polygons, BVHTree.FromPolygons(positions.tolist(), polygons)))

    def _hit(self, mesh_object, positions, polygons, location, polygon: int, distance: float) -> SurfaceHit:
        point = np.array(location, dtype=np.float64)
        corners = list(polygons[polygon])
        best = None
        for i in range(1, len(corners) - 1):  # fan triangles: the one the point lies in (least clamping)
            triangle = [corners[0], corners[i], corners[i + 1]]
            weights = _barycentric(point, positions[triangle])
            error = float(np.linalg.norm(weights @ positions[triangle] - point))
            if best is None or error < best[0]:
                best = (error, triangle, weights)
        _, triangle, weights = best
        kept = [(vertex, float(weight)) for vertex, weight in zip(triangle, weights) if weight > 1e-4]
        return SurfaceHit(mesh_object, point, [vertex for vertex, _ in kept], [weight for _, weight in kept], distance)

    def ray(self, point: np.ndarray, toward: np.ndarray, reach: float, skip: Sequence[bpy.types.Object] = ()) -> SurfaceHit | None:
        """The first surface met looking back at ``point`` from ``reach`` along ``toward``."""
        direction = Vector(toward).normalized()
        origin = Vector(point) + direction * reach
        best = None
        for mesh_object, positions, polygons, tree in self.entries:
            if mesh_object in skip:
                continue
            location, _, polygon, distance = tree.ray_cast(origin, -direction, 2.0 * reach)
            if location is not None and (best is None or distance < best.distance):
                best = self._hit(mesh_object, positions, polygons, location, polygon, distance)
        return best

    def nearest(self, point: np.ndarray, within: float, skip: Sequence[bpy.types.Object] = ()) -> SurfaceHit | None:
        """The surface point nearest to ``point``, no further than ``within``."""
        best = None
        for mesh_object, positions, polygons, tree in self.entries:
            if mesh_object in skip:
                continue
            location, _, polygon, distance = tree.find_nearest(Vector(point), within)
            if location is not None and (best is None or distance < best.distance):
                best = self._hit(mesh_object, positions, polygons, location, polygon, distance)
        return best
