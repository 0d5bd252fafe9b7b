"""What the add-on reads from a rig: its meshes, landmark positions, head frame and expression code.

A rig is an armature whose child meshes form the head (the demo head, or the user's character).
Landmarks are vertex groups ``landmark:<name>`` on those meshes (the weighted mean of their
vertices, after shape keys and armature deformation).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..core.expression_code import extract_code, rig_layout
from ..core.projection import head_points_from_blender
from ..core.pose_skeleton import LANDMARK_GROUP_PREFIX, LANDMARK_NAMES
from ..formats.cameras import HeadFrame
from ..formats.errors import FormatError

EXPRESSION_LAYOUT_PROPERTY = "avatar_foundry_expression_layout"
HEAD_BOX_MARGIN = 1.25
"""The head box is this much larger than the rest-pose bounds, so canonical coordinates stay inside."""


def find_rig(name: str | None, context_object: bpy.types.Object | None = None) -> bpy.types.Object:
    """The armature named ``name``, or the given object (or its armature parent); clear errors otherwise."""
    obj = bpy.data.objects.get(name) if name else context_object
    if obj is None:
        if name:
            raise FormatError("rig", f"there is no object named {name!r}", "pick the head's armature in the Conditions panel")
        raise FormatError("rig", "no rig is selected", "select the head's armature (or add a demo head) first")
    if obj.type != "ARMATURE" and obj.parent is not None and obj.parent.type == "ARMATURE":
        obj = obj.parent
    if obj.type != "ARMATURE":
        raise FormatError("rig", f"{obj.name!r} is a {obj.type.lower()}, not an armature", "select the head's armature")
    if not rig_meshes(obj):
        raise FormatError("rig", f"armature {obj.name!r} has no child meshes", "parent the head mesh to the armature")
    return obj


def rig_meshes(rig: bpy.types.Object) -> list[bpy.types.Object]:
    return [child for child in rig.children_recursive if child.type == "MESH"]


@dataclass
class LandmarkSource:
    """Where a landmark comes from: (mesh name, vertex indices, weights)."""

    mesh: str
    vertices: np.ndarray
    weights: np.ndarray


def landmark_sources(rig: bpy.types.Object) -> dict[str, LandmarkSource]:
    """Landmark name -> its vertices; refuses a rig without landmarks, naming the expected groups."""
    sources: dict[str, LandmarkSource] = {}
    for mesh_object in rig_meshes(rig):
        groups = {group.index: group.name[len(LANDMARK_GROUP_PREFIX):] for group in mesh_object.vertex_groups
                  if group.name.startswith(LANDMARK_GROUP_PREFIX)}
        if not groups:
            continue
        members: dict[str, list[tuple[int, float]]] = {name: [] for name in groups.values()}
        for vertex in mesh_object.data.vertices:
            for element in vertex.groups:
                if element.group in groups and element.weight > 0:
                    members[groups[element.group]].append((vertex.index, element.weight))
        for name, entries in members.items():
            if entries:
                indices, weights = zip(*entries)
                sources[name] = LandmarkSource(mesh_object.name, np.array(indices), np.array(weights, dtype=np.float64))
    if not sources:
        expected = ", ".join(LANDMARK_GROUP_PREFIX + name for name in LANDMARK_NAMES[:3])
        raise FormatError("rig.landmarks", f"rig {rig.name!r} has no landmark vertex groups ({expected}, ...)",
                          "add vertex groups named landmark:<name> on the head mesh, or use Add Demo Head")
    return sources


def evaluated_landmarks(sources: dict[str, LandmarkSource], depsgraph: bpy.types.Depsgraph) -> dict[str, np.ndarray]:
    """World positions (Blender coordinates) of the landmarks in the evaluated (posed) state."""
    positions: dict[str, np.ndarray] = {}
    coordinates_by_mesh: dict[str, np.ndarray] = {}
    for name, source in sources.items():
        if source.mesh not in coordinates_by_mesh:
            evaluated = bpy.data.objects[source.mesh].evaluated_get(depsgraph)
            mesh = evaluated.data
            local = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", local)
            matrix = np.array(evaluated.matrix_world, dtype=np.float64)
            coordinates_by_mesh[source.mesh] = local.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        points = coordinates_by_mesh[source.mesh][source.vertices]
        positions[name] = (points * source.weights[:, None]).sum(axis=0) / source.weights.sum()
    return positions


def rest_bounds(rig: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """World-space bounds of the rig meshes in their rest pose (no shape keys, no armature)."""
    lows, highs = [], []
    for mesh_object in rig_meshes(rig):
        local = np.empty(len(mesh_object.data.vertices) * 3, dtype=np.float32)
        mesh_object.data.vertices.foreach_get("co", local)
        matrix = np.array(mesh_object.matrix_world, dtype=np.float64)
        world = local.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        lows.append(world.min(axis=0))
        highs.append(world.max(axis=0))
    return np.min(lows, axis=0), np.max(highs, axis=0)


def head_frame(rig: bpy.types.Object) -> HeadFrame:
    """The head box around the rig's rest pose: centred on its bounds, edge = largest extent x margin."""
    low, high = rest_bounds(rig)
    centre = (low + high) / 2.0
    return HeadFrame(center=tuple(float(x) for x in centre), size=float((high - low).max() * HEAD_BOX_MARGIN))


def shape_key_owner(rig: bpy.types.Object) -> bpy.types.Object | None:
    """The rig mesh with the most shape keys (the face)."""
    candidates = [mesh for mesh in rig_meshes(rig) if mesh.data.shape_keys is not None]
    return max(candidates, key=lambda mesh: len(mesh.data.shape_keys.key_blocks), default=None)


def expression_layout_of(rig: bpy.types.Object) -> list[str]:
    """The rig's stored layout (the demo head's is DEMO_LAYOUT), else one derived from its keys and bones."""
    stored = rig.get(EXPRESSION_LAYOUT_PROPERTY)
    if stored:
        return [str(name) for name in stored]
    owner = shape_key_owner(rig)
    keys = [block.name for block in owner.data.shape_keys.key_blocks] if owner else []
    return rig_layout(keys, [bone.name for bone in rig.data.bones])


def expression_code(rig: bpy.types.Object, layout: list[str], depsgraph: bpy.types.Depsgraph) -> list[float]:
    """The rig's current expression code, read from its evaluated (animated) state."""
    shape_keys: dict[str, float] = {}
    owner = shape_key_owner(rig)
    if owner is not None:
        key = owner.data.shape_keys.evaluated_get(depsgraph)
        shape_keys = {block.name: block.value for block in key.key_blocks}
    pose = rig.evaluated_get(depsgraph).pose
    rotations = {bone.name: tuple(bone.matrix_basis.to_euler("XYZ")) for bone in pose.bones}
    return extract_code(layout, shape_keys, rotations)


def landmark_head_points(positions: dict[str, np.ndarray], frame: HeadFrame) -> tuple[list[str], np.ndarray]:
    """Landmark names and their head-space positions (N, 3)."""
    names = sorted(positions)
    world = np.array([positions[name] for name in names], dtype=np.float64).reshape(-1, 3)
    return names, head_points_from_blender(world, frame)
