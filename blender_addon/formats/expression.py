"""Expression codes: how a rig's state becomes a fixed-length vector of named numbers.

A code is shape-key values followed by face-bone rotations, in an order fixed by a layout: a list
of names such as ``key:jaw_open`` or ``bone:jaw:rx`` (rotation about the bone's local x, radians,
relative to the rest pose). The layout travels with every bundle (``expression_names``) and every
deferred-renderer checkpoint, so a code is never read in the wrong order.
"""

from __future__ import annotations

from typing import Sequence

from .errors import FormatError

DEMO_SHAPE_KEYS = ("jaw_open", "smile_L", "smile_R", "blink_L", "blink_R", "brow_up", "brow_down", "pucker")
DEMO_FACE_BONES = ("jaw", "head", "eye_L", "eye_R")
ROTATION_AXES = ("rx", "ry", "rz")


def shape_key_name(key: str) -> str:
    return f"key:{key}"


def bone_rotation_names(bone: str) -> list[str]:
    return [f"bone:{bone}:{axis}" for axis in ROTATION_AXES]


def expression_layout(shape_keys: Sequence[str], face_bones: Sequence[str]) -> list[str]:
    """Names of a code's entries: shape keys in the given order, then three rotations per bone."""
    names = [shape_key_name(key) for key in shape_keys]
    for bone in face_bones:
        names.extend(bone_rotation_names(bone))
    if len(set(names)) != len(names):
        raise FormatError("expression_names", "shape keys and bones must not repeat")
    return names


DEMO_LAYOUT: tuple[str, ...] = tuple(expression_layout(DEMO_SHAPE_KEYS, DEMO_FACE_BONES))


def check_code(code: Sequence[float], layout: Sequence[str], field: str = "expression") -> list[float]:
    """Refuse a code whose length differs from its layout's, naming both lengths."""
    if len(code) != len(layout):
        raise FormatError(
            field,
            f"has {len(code)} numbers but the layout has {len(layout)} ({', '.join(layout[:4])}, ...)",
            "export the expression codes from the same rig the model was trained with",
        )
    return [float(x) for x in code]
