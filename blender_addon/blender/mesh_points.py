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


DEFORMING_MODIFIERS = frozenset({
    "ARMATURE", "CAST", "CORRECTIVE_SMOOTH", "CURVE", "DISPLACE", "HOOK", "LAPLACIANDEFORM", "LAPLACIANSMOOTH",
    "LATTICE", "MESH_CACHE", "MESH_DEFORM", "MESH_SEQUENCE_CACHE", "SHRINKWRAP", "SIMPLE_DEFORM", "SMOOTH",
    "SURFACE_DEFORM", "WARP", "WAVE", "NORMAL_EDIT", "WEIGHTED_NORMAL", "UV_PROJECT", "UV_WARP", "DATA_TRANSFER",
    "VERTEX_WEIGHT_EDIT", "VERTEX_WEIGHT_MIX", "VERTEX_WEIGHT_PROXIMITY",
})
"""Modifiers that move vertices without adding or removing any: the evaluated mesh keeps its vertex
indices, so vertex groups (landmarks, head weights) still name the same vertices."""


class DeformOnly:
    """Context manager: while open, the meshes' other modifiers (Subdivision Surface, Mirror, Solidify...)
    are off in the viewport, so evaluated meshes are posed and shape-keyed but keep their vertex indices.
    Renders are unaffected (they use the render switch); every switch is put back on exit."""

    def __init__(self, meshes: list[bpy.types.Object]) -> None:
        self.meshes = meshes
        self._switched: list[tuple[str, str]] = []

    def __enter__(self) -> "DeformOnly":
        for mesh_object in self.meshes:
            for modifier in mesh_object.modifiers:
                if modifier.show_viewport and modifier.type not in DEFORMING_MODIFIERS:
                    modifier.show_viewport = False
                    self._switched.append((mesh_object.name, modifier.name))
        return self

    def __exit__(self, *exc_info) -> None:
        for object_name, modifier_name in self._switched:
            mesh_object = bpy.data.objects.get(object_name)
            modifier = mesh_object.modifiers.get(modifier_name) if mesh_object is not None else None
            if modifier is not None:
                modifier.show_viewport = True
        self._switched.clear()
