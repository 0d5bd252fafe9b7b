"""Test characters built like the ones artists bring, not like the demo head.

- ``add_mixamo_character``: a full-body Mixamo-style skeleton (``mixamorig:`` names, quaternion
  pose bones, T-pose arms, eye bones, a ``HeadTop_End`` leaf) with one body mesh weighted to it,
  no shape keys and no landmark groups;
- ``add_arkit_head``: a Ready Player Me-style head split across face, eyes and teeth meshes that
  all carry the same ARKit shape keys (only the face's move much), on a small Neck/Head/eye skeleton;
- ``add_shape_key_head``: a head that is only a mesh with ARKit shape keys, no armature;
- ``add_rigify_head``: a Rigify-style head: control bones (``neck``, ``head``, ``jaw``, ``eye.L``...),
  their ``ORG-`` copies (Copy Transforms of the control), ``DEF-`` copies that deform the mesh
  (Copy Rotation of the control) and an ``MCH-`` helper.
"""

from __future__ import annotations

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Vector

MIXAMO_BONES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], str | None]] = {
    "mixamorig:Hips": ((0, 0, 1.0), (0, 0, 1.1), None),
    "mixamorig:Spine": ((0, 0, 1.1), (0, 0, 1.22), "mixamorig:Hips"),
    "mixamorig:Spine1": ((0, 0, 1.22), (0, 0, 1.32), "mixamorig:Spine"),
    "mixamorig:Spine2": ((0, 0, 1.32), (0, 0, 1.43), "mixamorig:Spine1"),
    "mixamorig:Neck": ((0, 0, 1.43), (0, 0, 1.55), "mixamorig:Spine2"),
    "mixamorig:Head": ((0, 0, 1.55), (0, 0, 1.77), "mixamorig:Neck"),
    "mixamorig:HeadTop_End": ((0, 0, 1.77), (0, 0, 1.87), "mixamorig:Head"),
    "mixamorig:LeftEye": ((0.035, -0.07, 1.68), (0.035, -0.09, 1.68), "mixamorig:Head"),
    "mixamorig:RightEye": ((-0.035, -0.07, 1.68), (-0.035, -0.09, 1.68), "mixamorig:Head"),
    "mixamorig:LeftShoulder": ((0.03, 0, 1.41), (0.15, 0, 1.41), "mixamorig:Spine2"),
    "mixamorig:LeftArm": ((0.15, 0, 1.41), (0.42, 0, 1.41), "mixamorig:LeftShoulder"),
    "mixamorig:LeftForeArm": ((0.42, 0, 1.41), (0.66, 0, 1.41), "mixamorig:LeftArm"),
    "mixamorig:LeftHand": ((0.66, 0, 1.41), (0.76, 0, 1.41), "mixamorig:LeftForeArm"),
    "mixamorig:RightShoulder": ((-0.03, 0, 1.41), (-0.15, 0, 1.41), "mixamorig:Spine2"),
    "mixamorig:RightArm": ((-0.15, 0, 1.41), (-0.42, 0, 1.41), "mixamorig:RightShoulder"),
    "mixamorig:RightForeArm": ((-0.42, 0, 1.41), (-0.66, 0, 1.41), "mixamorig:RightArm"),
    "mixamorig:RightHand": ((-0.66, 0, 1.41), (-0.76, 0, 1.41), "mixamorig:RightForeArm"),
}

ARKIT_TEST_KEYS = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "browOuterUpLeft", "browOuterUpRight",
                   "eyeBlinkLeft", "eyeBlinkRight", "noseSneerLeft", "noseSneerRight", "viseme_aa")
HEAD_CENTRE = Vector((0.0, 0.0, 1.66))
HEAD_RADII = Vector((0.09, 0.105, 0.115))


def _armature(name: str, bones: dict) -> bpy.types.Object:
    rig = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, (head, tail, parent) in bones.items():
        bone = rig.data.edit_bones.new(bone_name)
        bone.head, bone.tail = head, tail
        if parent:
            bone.parent = rig.data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return rig


def _mesh_from_parts(name: str, parts: list[tuple[str, dict, str]]) -> tuple[bpy.types.Object, dict[str, list[int]]]:
    """A mesh of bmesh primitives: (kind, arguments, vertex group) each; returns it and the groups' vertices."""
    vertices: list[tuple[float, float, float]] = []
    faces: list[list[int]] = []
    groups: dict[str, list[int]] = {}
    for kind, arguments, group in parts:
        shape = bmesh.new()
        {"sphere": bmesh.ops.create_uvsphere, "cube": bmesh.ops.create_cube, "cone": bmesh.ops.create_cone}[kind](shape, **arguments)
        shape.verts.index_update()
        offset = len(vertices)
        vertices.extend(tuple(vertex.co) for vertex in shape.verts)
        faces.extend([offset + vertex.index for vertex in face.verts] for face in shape.faces)
        groups.setdefault(group, []).extend(range(offset, len(vertices)))
        shape.free()
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj, groups


def _bind(obj: bpy.types.Object, rig: bpy.types.Object, groups: dict[str, list[int]]) -> None:
    for group_name, indices in groups.items():
        obj.vertex_groups.new(name=group_name).add(indices, 1.0, "REPLACE")
    obj.parent = rig
    obj.modifiers.new("Armature", "ARMATURE").object = rig


def _placed(scale: tuple[float, float, float], at: tuple[float, float, float]) -> Matrix:
    return Matrix.Translation(at) @ Matrix.Diagonal((*scale, 1.0))


def add_mixamo_character(name: str = "MixamoRig") -> bpy.types.Object:
    """Armature + ``{name}_Body`` (head, nose, neck, torso, T-pose arms); pose bones in quaternion mode."""
    rig = _armature(name, MIXAMO_BONES)
    parts = [
        ("sphere", {"u_segments": 32, "v_segments": 16, "radius": 1.0, "matrix": _placed(tuple(HEAD_RADII), tuple(HEAD_CENTRE))}, "mixamorig:Head"),
        ("sphere", {"u_segments": 12, "v_segments": 8, "radius": 0.022, "matrix": Matrix.Translation((0, -0.1, 1.64))}, "mixamorig:Head"),
        ("cone", {"cap_ends": True, "segments": 16, "radius1": 0.05, "radius2": 0.045, "depth": 0.16,
                  "matrix": Matrix.Translation((0, 0.01, 1.49))}, "mixamorig:Neck"),
        ("cube", {"size": 1.0, "matrix": _placed((0.36, 0.2, 0.43), (0, 0, 1.2))}, "mixamorig:Spine2"),
        ("cube", {"size": 1.0, "matrix": _placed((0.62, 0.08, 0.08), (0.46, 0, 1.41))}, "mixamorig:LeftArm"),
        ("cube", {"size": 1.0, "matrix": _placed((0.62, 0.08, 0.08), (-0.46, 0, 1.41))}, "mixamorig:RightArm"),
    ]
    body, groups = _mesh_from_parts(f"{name}_Body", parts)
    _bind(body, rig, groups)
    for bone in rig.pose.bones:
        assert bone.rotation_mode == "QUATERNION"
    return rig


def _arkit_offsets(vertices: np.ndarray, centre: np.ndarray, radii: np.ndarray, strength: float) -> dict[str, np.ndarray]:
    """Per ARKit key, a smooth bump of vertex offsets around the face part it moves."""
    def bump(direction: tuple[float, float, float], move: tuple[float, float, float], width: float) -> np.ndarray:
        unit = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
        anchor = centre + unit * radii
        falloff = np.exp(-np.sum((vertices - anchor) ** 2, axis=1) / width ** 2)
        return falloff[:, None] * np.asarray(move) * strength

    return {
        "jawOpen": bump((0, -0.6, -1), (0, 0, -0.03), 0.05),
        "mouthSmileLeft": bump((0.45, -1, -0.55), (0.012, 0.004, 0.01), 0.02),
        "mouthSmileRight": bump((-0.45, -1, -0.55), (-0.012, 0.004, 0.01), 0.02),
        "browOuterUpLeft": bump((0.6, -1, 0.45), (0, 0, 0.012), 0.02),
        "browOuterUpRight": bump((-0.6, -1, 0.45), (0, 0, 0.012), 0.02),
        "eyeBlinkLeft": bump((0.38, -1, 0.2), (0, -0.003, -0.008), 0.015),
        "eyeBlinkRight": bump((-0.38, -1, 0.2), (0, -0.003, -0.008), 0.015),
        "noseSneerLeft": bump((0.12, -1, -0.1), (0.002, 0, 0.006), 0.012),
        "noseSneerRight": bump((-0.12, -1, -0.1), (-0.002, 0, 0.006), 0.012),
        "viseme_aa": bump((0, -0.6, -1), (0, 0, -0.02), 0.05),
    }


def _add_arkit_keys(obj: bpy.types.Object, strength: float) -> None:
    """The ARKit test keys, moving the parts they name (strength 0: present but still, as on eyes)."""
    count = len(obj.data.vertices)
    vertices = np.empty(count * 3, dtype=np.float64)
    obj.data.vertices.foreach_get("co", vertices)
    vertices = vertices.reshape(-1, 3)
    obj.shape_key_add(name="Basis", from_mix=False)
    for key_name, offsets in _arkit_offsets(vertices, np.asarray(HEAD_CENTRE), np.asarray(HEAD_RADII), strength).items():
        block = obj.shape_key_add(name=key_name, from_mix=False)
        block.data.foreach_set("co", (vertices + offsets).ravel().astype(np.float32))
        block.value = 0.0


def _face_part() -> tuple[str, dict, str]:
    return ("sphere", {"u_segments": 48, "v_segments": 24, "radius": 1.0, "matrix": _placed(tuple(HEAD_RADII), tuple(HEAD_CENTRE))}, "Head")


def add_arkit_head(name: str = "AvatarRoot") -> bpy.types.Object:
    """Neck/Head/LeftEye/RightEye armature; meshes ``Wolf3D_Eyes`` (created first, so it comes first),
    ``Wolf3D_Head`` and ``Wolf3D_Teeth``, each with the same ARKit keys."""
    bones = {
        "Neck": ((0, 0, 1.45), (0, 0, 1.56), None),
        "Head": ((0, 0, 1.56), (0, 0, 1.78), "Neck"),
        "LeftEye": ((0.034, -0.08, 1.68), (0.034, -0.1, 1.68), "Head"),
        "RightEye": ((-0.034, -0.08, 1.68), (-0.034, -0.1, 1.68), "Head"),
    }
    rig = _armature(name, bones)
    eye_parts = [("sphere", {"u_segments": 16, "v_segments": 8, "radius": 0.016, "matrix": Matrix.Translation((x, -0.088, 1.68))}, bone)
                 for x, bone in ((0.034, "LeftEye"), (-0.034, "RightEye"))]
    eyes, groups = _mesh_from_parts("Wolf3D_Eyes", eye_parts)
    _bind(eyes, rig, groups)
    _add_arkit_keys(eyes, 0.0)
    face, groups = _mesh_from_parts("Wolf3D_Head", [_face_part()])
    _bind(face, rig, groups)
    _add_arkit_keys(face, 1.0)
    teeth, groups = _mesh_from_parts("Wolf3D_Teeth", [("cube", {"size": 1.0, "matrix": _placed((0.05, 0.02, 0.02), (0, -0.07, 1.6))}, "Head")])
    _bind(teeth, rig, groups)
    _add_arkit_keys(teeth, 0.3)
    return rig


def add_shape_key_head(name: str = "BlobHead") -> bpy.types.Object:
    """One mesh with ARKit keys and no armature."""
    head, _ = _mesh_from_parts(name, [_face_part()])
    _add_arkit_keys(head, 1.0)
    return head


RIGIFY_CONTROLS = {
    "neck": ((0, 0, 1.45), (0, 0, 1.56), None),
    "head": ((0, 0, 1.56), (0, 0, 1.78), "neck"),
    "jaw": ((0, -0.01, 1.63), (0, -0.08, 1.56), "head"),
    "eye.L": ((0.034, -0.08, 1.68), (0.034, -0.1, 1.68), "head"),
    "eye.R": ((-0.034, -0.08, 1.68), (-0.034, -0.1, 1.68), "head"),
}


def _constrain(rig: bpy.types.Object, bone: str, kind: str, control: str) -> None:
    constraint = rig.pose.bones[bone].constraints.new(kind)
    constraint.target, constraint.subtarget = rig, control


def add_rigify_head(name: str = "RigifyHead") -> bpy.types.Object:
    """Controls + ``ORG-``/``DEF-`` copies of each + ``MCH-eye_target``; ``{name}_Body`` (head, a chin
    block, eyes, neck) is weighted to the ``DEF-`` bones only, as Rigify's generated rigs are."""
    bones = dict(RIGIFY_CONTROLS)
    for prefix in ("ORG-", "DEF-"):
        bones.update({prefix + bone: (head, tail, parent and prefix + parent) for bone, (head, tail, parent) in RIGIFY_CONTROLS.items()})
    bones["MCH-eye_target"] = ((0, -0.3, 1.68), (0, -0.32, 1.68), "head")
    rig = _armature(name, bones)
    for bone in rig.data.bones:
        bone.use_deform = bone.name.startswith("DEF-")
    for control in RIGIFY_CONTROLS:
        _constrain(rig, "ORG-" + control, "COPY_TRANSFORMS", control)
        _constrain(rig, "DEF-" + control, "COPY_ROTATION", control)
    parts = [
        ("sphere", {"u_segments": 32, "v_segments": 16, "radius": 1.0, "matrix": _placed(tuple(HEAD_RADII), tuple(HEAD_CENTRE))}, "DEF-head"),
        ("cube", {"size": 1.0, "matrix": _placed((0.07, 0.06, 0.04), (0, -0.07, 1.56))}, "DEF-jaw"),
        ("cone", {"cap_ends": True, "segments": 16, "radius1": 0.05, "radius2": 0.045, "depth": 0.16,
                  "matrix": Matrix.Translation((0, 0.01, 1.49))}, "DEF-neck"),
    ] + [("sphere", {"u_segments": 16, "v_segments": 8, "radius": 0.016, "matrix": Matrix.Translation((x, -0.1, 1.68))}, bone)
         for x, bone in ((0.034, "DEF-eye.L"), (-0.034, "DEF-eye.R"))]
    body, groups = _mesh_from_parts(f"{name}_Body", parts)
    _bind(body, rig, groups)
    return rig
