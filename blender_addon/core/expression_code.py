"""A rig state -> its expression code, in the order of a layout (``formats.expression``).

The Blender side gathers shape-key values and pose-bone rotations into plain dicts; this module
orders them, so the order is testable without Blender and identical for every caller.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..formats.errors import FormatError
from ..formats.expression import ROTATION_AXES, expression_layout
from .rig_naming import controls_first, is_face_bone, is_mechanism

Rotation = Sequence[float]  # (rx, ry, rz) radians relative to the rest pose


def extract_code(layout: Sequence[str], shape_keys: Mapping[str, float], bone_rotations: Mapping[str, Rotation]) -> list[float]:
    """Values for every name in ``layout`` (``key:<name>`` or ``bone:<bone>:<axis>``).

    A name the rig cannot provide is an error naming it, never a silent zero: a code with a
    missing entry would be read as a different expression.
    """
    code = []
    for name in layout:
        kind, _, rest = name.partition(":")
        if kind == "key":
            if rest not in shape_keys:
                raise FormatError("expression_names", f"the rig has no shape key {rest!r}", "add the shape key or pick a layout without it")
            code.append(float(shape_keys[rest]))
        elif kind == "bone":
            bone, _, axis = rest.rpartition(":")
            if bone not in bone_rotations:
                raise FormatError("expression_names", f"the rig has no bone {bone!r}", "add the bone or pick a layout without it")
            if axis not in ROTATION_AXES:
                raise FormatError("expression_names", f"{name!r} has an unknown rotation axis {axis!r}")
            code.append(float(bone_rotations[bone][ROTATION_AXES.index(axis)]))
        else:
            raise FormatError("expression_names", f"{name!r} is neither 'key:<name>' nor 'bone:<bone>:<axis>'")
    return code


def rig_layout(shape_key_names: Sequence[str], bone_names: Sequence[str]) -> list[str]:
    """The layout of a rig without a preset one: its shape keys (minus the basis), then the face
    bones (head, neck, jaw, eye, brow, lip... by ``rig_naming.is_face_bone``; body and leaf bones
    such as ``HeadTop_End`` never move the face and would only add always-zero entries), each in
    the rig's own order. Of a Rigify rig's copies only the control counts (``controls_first``),
    and no ``MCH-`` mechanism bone: one channel per face part."""
    keys = [name for name in shape_key_names if name.lower() != "basis"]
    bones = controls_first([name for name in bone_names if is_face_bone(name) and not is_mechanism(name)])
    return expression_layout(keys, bones)
