"""Vertex positions of a mesh object in world space, as numpy arrays (one reader for every caller)."""

from __future__ import annotations

import bpy
import numpy as np


def world_vertices(mesh_object: bpy.types.Object, depsgraph: bpy.types.Depsgraph | None = None) -> np.ndarray:
    """(N, 3) world positions: of the rest mesh (no shape keys, no armature) without a depsgraph,
    of the evaluated (posed, animated) mesh with one."""
    source = mesh_object.evaluated_get(depsgraph) if depsgraph is not None else mesh_object
    local = np.empty(len(source.data.vertices) * 3, dtype=np.float64)
    source.data.vertices.foreach_get("co", local)
    matrix = np.array(source.matrix_world, dtype=np.float64)
    return local.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
