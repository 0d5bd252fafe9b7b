"""Posing a rig to an expression code, and finding which code channels move what the render shows.

An eye bone that deforms no vertex, or a shape key that moves nothing, is a channel the renderer
would learn as "this number changes nothing": random expressions leave such channels at rest and
the user is told which they are.
"""

from __future__ import annotations

from typing import Sequence

import bpy
import numpy as np
from mathutils import Euler

from . import rig as rig_data
from .mesh_points import world_vertices

PROBE_KEY = 1.0
PROBE_ROTATION = 0.25
"""Radians a bone channel is turned to see whether it moves anything."""
STILL_SHARE = 1e-3
"""A channel that moves no vertex by more than this share of the head box's edge moves nothing visible."""


def _set_bone_rotation(bone: bpy.types.PoseBone, rotation: Euler) -> None:
    """Give a pose bone this rotation (XYZ Euler, relative to rest) in the bone's own rotation mode."""
    if bone.rotation_mode == "QUATERNION":
        bone.rotation_quaternion = rotation.to_quaternion()
    elif bone.rotation_mode == "AXIS_ANGLE":
        axis, angle = rotation.to_quaternion().to_axis_angle()
        bone.rotation_axis_angle = (angle, *axis)
    else:
        bone.rotation_euler = rotation.to_matrix().to_euler(bone.rotation_mode)


def apply_code(rig: bpy.types.Object, layout: Sequence[str], code: Sequence[float]) -> None:
    """Pose the rig to an expression code of that layout: each key on every mesh carrying it, each
    bone rotation in the bone's own rotation mode (the inverse of ``rig.expression_code``)."""
    rotations: dict[str, Euler] = {}
    for name, value in zip(layout, code):
        kind, _, rest = name.partition(":")
        if kind == "key":
            rig_data.set_shape_key(rig, rest, value)
        elif kind == "bone":
            bone_name, _, axis = rest.rpartition(":")
            rotation = rotations.setdefault(bone_name, Euler(rig_data.bone_rotation(rig.pose.bones[bone_name]), "XYZ"))
            rotation["xyz".index(axis[1])] = value
    for bone_name, rotation in rotations.items():
        _set_bone_rotation(rig.pose.bones[bone_name], rotation)


def _surface(rig: bpy.types.Object, meshes: list[bpy.types.Object]) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    return np.concatenate([world_vertices(mesh, depsgraph) for mesh in meshes]) if meshes else np.zeros((0, 3))


def moving_channels(rig: bpy.types.Object, layout: Sequence[str], head_size: float) -> list[str]:
    """The layout entries that move the evaluated meshes, each tried alone from the rest expression
    (a key at 1, a bone turned ``PROBE_ROTATION``). Leaves the rig at the rest expression."""
    meshes = rig_data.rig_meshes(rig)
    rest = [0.0] * len(layout)
    apply_code(rig, layout, rest)
    still = _surface(rig, meshes)
    moving = []
    for index, name in enumerate(layout):
        probe = list(rest)
        probe[index] = PROBE_KEY if name.startswith("key:") else PROBE_ROTATION
        apply_code(rig, layout, probe)
        moved = _surface(rig, meshes)
        if moved.shape == still.shape and len(moved) and float(np.abs(moved - still).max()) > STILL_SHARE * head_size:
            moving.append(name)
    apply_code(rig, layout, rest)
    return moving
