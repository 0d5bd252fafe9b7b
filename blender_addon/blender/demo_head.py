"""Builds the demo head in the scene: an armature (neck, head, jaw, eyes), a sculpted head mesh
with expression shape keys and landmark vertex groups, eye meshes parented to the eye bones, and
procedural materials. Geometry comes from ``core.demo_head_shape``; this only makes bpy data."""

from __future__ import annotations

import json
from dataclasses import asdict

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core.demo_appearance import AppearanceParams
from ..core.demo_head_shape import BASE_RADII, HeadMesh, IdentityParams, build_head
from ..core.pose_skeleton import LANDMARK_GROUP_PREFIX
from ..formats.expression import DEMO_LAYOUT, DEMO_SHAPE_KEYS
from .all_or_nothing import all_or_nothing
from .demo_material import MouthPlacement, eye_material, skin_material
from .rig import EXPRESSION_LAYOUT_PROPERTY

DEMO_HEAD_PROPERTY = "avatar_foundry_demo_head"


def _bone_layout(head: HeadMesh) -> dict[str, tuple[Vector, Vector, str | None]]:
    """name -> (head, tail, parent) of each bone, in armature space."""
    centre = Vector(head.centre)
    half_height = float(head.vertices[:, 2].max() - head.centre[2])
    neck_base = centre + Vector((0.0, 0.015, -1.15 * half_height))
    skull_base = centre + Vector((0.0, 0.015, -0.55 * half_height))
    jaw_hinge = centre + Vector((0.0, 0.0, -0.25 * half_height))
    bones = {
        "neck": (neck_base, skull_base, None),
        "head": (skull_base, centre + Vector((0.0, 0.015, half_height)), "neck"),
        "jaw": (jaw_hinge, jaw_hinge + Vector((0.0, -0.07, -0.07)), "head"),
    }
    for name, eye_centre in head.eye_centres.items():
        start = Vector(eye_centre)
        bones[name] = (start, start + Vector((0.0, -0.03, 0.0)), "head")
    return bones


def _add_armature(collection: bpy.types.Collection, name: str, head: HeadMesh) -> bpy.types.Object:
    armature = bpy.data.armatures.new(name)
    rig = bpy.data.objects.new(name, armature)
    collection.objects.link(rig)
    view_layer = bpy.context.view_layer
    view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, (start, end, parent) in _bone_layout(head).items():
        bone = armature.edit_bones.new(bone_name)
        bone.head, bone.tail = start, end
        if parent:
            bone.parent = armature.edit_bones[parent]
            bone.use_connect = False
    bpy.ops.object.mode_set(mode="OBJECT")
    for pose_bone in rig.pose.bones:
        pose_bone.rotation_mode = "XYZ"
    return rig


def _add_head_mesh(collection: bpy.types.Collection, rig: bpy.types.Object, name: str, head: HeadMesh) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(head.vertices.tolist(), [], head.faces)
    mesh.shade_smooth()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    obj.parent = rig
    obj.add_rest_position_attribute = True
    obj.shape_key_add(name="Basis", from_mix=False)
    for key in DEMO_SHAPE_KEYS:
        block = obj.shape_key_add(name=key, from_mix=False)
        block.data.foreach_set("co", (head.vertices + head.shape_key_offsets[key]).ravel().astype(np.float32))
        block.slider_min, block.slider_max = 0.0, 1.0
        block.value = 0.0
    jaw_group = obj.vertex_groups.new(name="jaw")
    head_group = obj.vertex_groups.new(name="head")
    for index, weight in enumerate(head.jaw_weights.tolist()):
        if weight > 0.0:
            jaw_group.add([index], weight, "REPLACE")
        if weight < 1.0:
            head_group.add([index], 1.0 - weight, "REPLACE")
    for landmark, index in head.landmark_vertices.items():
        obj.vertex_groups.new(name=LANDMARK_GROUP_PREFIX + landmark).add([index], 1.0, "REPLACE")
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = rig
    return obj


def _add_eye(collection: bpy.types.Collection, rig: bpy.types.Object, name: str, bone: str, head: HeadMesh, material) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    shape = bmesh.new()
    bmesh.ops.create_uvsphere(shape, u_segments=24, v_segments=12, radius=head.eye_radius)
    shape.to_mesh(mesh)
    shape.free()
    mesh.shade_smooth()
    mesh.materials.append(material)
    eye = bpy.data.objects.new(name, mesh)
    front = min(range(len(mesh.vertices)), key=lambda index: mesh.vertices[index].co.y)
    eye.vertex_groups.new(name=LANDMARK_GROUP_PREFIX + bone).add([front], 1.0, "REPLACE")
    collection.objects.link(eye)
    eye.add_rest_position_attribute = True
    eye.parent = rig
    eye.parent_type = "BONE"
    eye.parent_bone = bone
    bpy.context.view_layer.update()
    eye.matrix_world = Matrix.Translation(Vector(head.eye_centres[bone]))
    return eye


def _mouth_placement(head: HeadMesh) -> MouthPlacement:
    left, right = (head.vertices[head.landmark_vertices[corner]] for corner in ("mouth_L", "mouth_R"))
    return MouthPlacement(tuple(float(value) for value in (left + right) / 2), float(abs(left[0] - right[0]) / 2))


def add_demo_head(
    context: bpy.types.Context,
    identity: IdentityParams = IdentityParams(),
    look: AppearanceParams = AppearanceParams(),
    name: str = "DemoHead",
    centre: tuple[float, float, float] = (0.0, 0.0, 1.6),
) -> bpy.types.Object:
    """Add a demo head to the active collection; returns its armature (the rig). If anything fails
    midway, nothing of the head is left in the file."""
    head = build_head(identity, centre)
    collection = context.collection or context.scene.collection
    with all_or_nothing(context):
        rig = _add_armature(collection, name, head)
        body = _add_head_mesh(collection, rig, f"{name}_mesh", head)
        half_height = float(BASE_RADII[2] * identity.head_height)
        body.data.materials.append(skin_material(f"{name}_skin", look, centre[2], half_height, _mouth_placement(head)))
        eyes = eye_material(f"{name}_eyes", look)
        for bone in ("eye_L", "eye_R"):
            _add_eye(collection, rig, f"{name}_{bone}", bone, head, eyes)
        rig[DEMO_HEAD_PROPERTY] = json.dumps({"identity": asdict(identity), "appearance": asdict(look)})
        rig[EXPRESSION_LAYOUT_PROPERTY] = list(DEMO_LAYOUT)
    return rig
