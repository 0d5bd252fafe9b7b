"""Which geometry of a character is its head: for framing, and for leaving the body out of the passes.

A full-body character (Mixamo, Ready Player Me) has one mesh from head to toe. The head is the
head bone and the bones under it (jaw, eyes, ``HeadTop_End``) or following it by constraints (a
Rigify control's ``DEF-`` copy), and the vertices weighted to them;
the passes also keep the neck. Everything else (shoulders, a T-pose arm that passes in front of
the face in a side view) is masked out of every render pass by a render-only Mask modifier, so
the viewport, the landmarks and the user's file stay as they were.

A rig without a recognisable head bone (the demo head names it ``head``; a mesh-only head has no
bones) keeps all of its geometry, and its head box holds all its meshes.

What frames the head is the skull and face: hair that hangs below the head (long hair weighted to
the head bone, a hair mesh reaching below the face) is rendered but does not frame it.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..core.rig_naming import find_bone
from .mesh_points import world_vertices

REGION_GROUP = "avatar_foundry_head_region"
MASK_MODIFIER = "avatar_foundry_head_mask"
REGION_SHARE = 0.5
"""A vertex is in the head (or head and neck) when at least this share of its bone weight is."""


@dataclass(frozen=True)
class HeadBones:
    head: frozenset[str]
    """The head bone and every bone under it."""
    region: frozenset[str]
    """``head`` plus the neck bones above the body: what the passes keep."""


def head_bones(rig: bpy.types.Object) -> HeadBones | None:
    """The head's bones, found by name (``core.rig_naming``); None for a rig without a head bone."""
    if rig.type != "ARMATURE":
        return None
    bones = rig.data.bones
    name = find_bone([bone.name for bone in bones], "head")
    if name is None:
        return None
    neck = set()
    parent = bones[name].parent
    while parent is not None and find_bone([parent.name], "neck") == parent.name:
        neck.add(parent.name)
        parent = parent.parent
    under = _followers(rig, {name})
    return HeadBones(frozenset(under), frozenset(under | _followers(rig, neck)))


def _followers(rig: bpy.types.Object, names: set[str]) -> set[str]:
    """The bones that move with these: their children and the bones a constraint makes follow them
    (Rigify's ``DEF-``/``ORG-`` copies, which carry the weights, copy the controls), at any depth."""
    found = set(names)
    while True:
        more = {bone.name for bone in rig.pose.bones if bone.name not in found and (
            (bone.parent is not None and bone.parent.name in found)
            or any(getattr(constraint, "target", None) == rig and getattr(constraint, "subtarget", "") in found
                   for constraint in bone.constraints))}
        if not more:
            return found
        found |= more


def vertices_in(mesh_object: bpy.types.Object, rig: bpy.types.Object, bones: frozenset[str]) -> np.ndarray:
    """Per vertex: True when it belongs to ``bones``. A mesh parented to a bone follows that bone;
    vertices weighted to no bone of the rig (and meshes not weighted at all) count as inside."""
    count = len(mesh_object.data.vertices)
    if mesh_object.parent is rig and mesh_object.parent_type == "BONE":
        return np.full(count, mesh_object.parent_bone in bones)
    bone_names = set(rig.data.bones.keys())
    groups = {group.index: group.name for group in mesh_object.vertex_groups if group.name in bone_names}
    inside = np.ones(count, dtype=bool)
    if not groups:
        return inside
    for vertex in mesh_object.data.vertices:
        total = wanted = 0.0
        for element in vertex.groups:
            name = groups.get(element.group)
            if name is not None:
                total += element.weight
                wanted += element.weight if name in bones else 0.0
        if total > 0.0:
            inside[vertex.index] = wanted >= REGION_SHARE * total
    return inside


HAIR_WORD = "hair"
"""Meshes with this in their name are hair: they frame the head only where the skull is."""
NECK_ALLOWANCE = 0.35
"""Head vertices this share of the head bone's length below its base still frame the head (the jaw,
the chin); lower ones (long hair weighted to the head) would only shrink the face."""


def is_hair(mesh_object: bpy.types.Object) -> bool:
    return HAIR_WORD in mesh_object.name.lower()


def head_points(rig: bpy.types.Object, meshes: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph | None = None) -> np.ndarray:
    """World positions of the head's vertices, (N, 3): those of the head bone and its children on a
    full-body character, every vertex of the meshes otherwise; of the evaluated (posed) head given a
    depsgraph, of the rest pose without. What hangs below the head (long hair weighted to the head,
    a hair mesh below the face) is left out: framing follows the skull and face."""
    bones = head_bones(rig)
    chunks, hair = [], []
    for mesh_object in meshes:
        world = world_vertices(mesh_object, depsgraph)
        if bones is not None and len(world) == len(mesh_object.data.vertices):
            world = world[vertices_in(mesh_object, rig, bones.head)]
        (hair if is_hair(mesh_object) else chunks).append(world)
    points = np.concatenate(chunks) if chunks else np.zeros((0, 3))
    if hair and len(points):
        hair_points = np.concatenate(hair)
        points = np.concatenate([points, hair_points[hair_points[:, 2] >= points[:, 2].min()]])
    if bones is not None:
        points = _above_neck(rig, points, depsgraph)
    if len(points) == 0 and bones is not None:
        points = np.array([rig.matrix_world @ rig.data.bones[name].head_local for name in bones.head]
                          + [rig.matrix_world @ rig.data.bones[name].tail_local for name in bones.head], dtype=np.float64)
    return points


def head_bone_line(rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """World (base, tip) of the head bone, posed given a depsgraph, at rest without; None without one."""
    name = find_bone([bone.name for bone in rig.data.bones], "head") if rig.type == "ARMATURE" else None
    if name is None:
        return None
    if depsgraph is None:
        bone = rig.data.bones[name]
        base, tip = bone.head_local, bone.tail_local
        matrix = rig.matrix_world
    else:
        evaluated = rig.evaluated_get(depsgraph)
        bone = evaluated.pose.bones[name]
        base, tip = bone.head, bone.tail
        matrix = evaluated.matrix_world
    return np.array(matrix @ base, dtype=np.float64), np.array(matrix @ tip, dtype=np.float64)


UPRIGHT_COSINE = float(np.cos(np.radians(50.0)))
"""A head bone tilted further than this from world +Z (importers orient bones toward a child, which
may be the eyes) does not say where the head's up is."""


def upright_head_line(rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """``head_bone_line`` when the bone points up (within ``UPRIGHT_COSINE`` of world +Z), else None."""
    line = head_bone_line(rig, depsgraph)
    if line is None:
        return None
    axis = line[1] - line[0]
    length = float(np.linalg.norm(axis))
    return line if length > 0.0 and axis[2] / length >= UPRIGHT_COSINE else None


def _above_neck(rig: bpy.types.Object, points: np.ndarray, depsgraph: bpy.types.Depsgraph | None) -> np.ndarray:
    """The points no lower (along an upright head bone) than its base minus ``NECK_ALLOWANCE`` of its length."""
    line = upright_head_line(rig, depsgraph)
    if line is None or len(points) == 0:
        return points
    base, tip = line
    axis = tip - base
    length = float(np.linalg.norm(axis))
    if length == 0.0:
        return points
    along = (points - base) @ (axis / length)
    kept = points[along >= -NECK_ALLOWANCE * length]
    return kept if len(kept) else points


class HeadOnlyRender:
    """Context manager: while open, renders of the rig's meshes show only the head and neck.

    Adds a vertex group and a Mask modifier that is on for renders and off in the viewport, so the
    view-layer depsgraph (landmarks, expression code) still sees the whole mesh. ``outside`` lists
    the meshes with no head vertex at all: callers leave them out of the render.
    """

    def __init__(self, rig: bpy.types.Object, meshes: list[bpy.types.Object]) -> None:
        self.rig, self.meshes = rig, meshes
        self.outside: list[bpy.types.Object] = []
        self._masked: list[str] = []

    def __enter__(self) -> "HeadOnlyRender":
        bones = head_bones(self.rig)
        if bones is None:
            return self
        for mesh_object in self.meshes:
            inside = vertices_in(mesh_object, self.rig, bones.region)
            if not inside.any():
                self.outside.append(mesh_object)
            elif not inside.all():
                self._mask(mesh_object, np.flatnonzero(inside))
        return self

    def _mask(self, mesh_object: bpy.types.Object, kept: np.ndarray) -> None:
        group = mesh_object.vertex_groups.new(name=REGION_GROUP)
        group.add(kept.tolist(), 1.0, "REPLACE")
        modifier = mesh_object.modifiers.new(MASK_MODIFIER, "MASK")
        modifier.mode, modifier.vertex_group, modifier.threshold = "VERTEX_GROUP", group.name, 0.5
        modifier.show_viewport, modifier.show_render = False, True
        self._masked.append(mesh_object.name)

    def __exit__(self, *exc_info) -> None:
        for name in self._masked:
            mesh_object = bpy.data.objects.get(name)
            if mesh_object is None:
                continue
            if (modifier := mesh_object.modifiers.get(MASK_MODIFIER)) is not None:
                mesh_object.modifiers.remove(modifier)
            if (group := mesh_object.vertex_groups.get(REGION_GROUP)) is not None:
                mesh_object.vertex_groups.remove(group)
        self._masked.clear()
