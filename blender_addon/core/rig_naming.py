"""What a bone or shape key of someone else's rig is for, read from its name.

Rigs name the same parts differently: Mixamo ``mixamorig:LeftEye``, Rigify ``DEF-eye.L``/``ORG-jaw``,
Ready Player Me / VRM ``LeftEye``/``Head``, hand-made ``eye_L``/``Jaw``. This module strips the
prefixes and reads the part and the side, case-insensitively, so the rest of the add-on asks
"is this the jaw?" once, the same way everywhere.
"""

from __future__ import annotations

import re
from typing import Sequence

RIG_PREFIXES = ("mixamorig:", "mixamorig_", "def-", "org-", "mch-", "j_bip_c_", "j_bip_l_", "j_bip_r_", "j_adj_l_", "j_adj_r_")
"""Prefixes of common rig conventions (Mixamo, Rigify, VRM), compared in lower case."""

FACE_PARTS = ("head", "neck", "jaw", "eye", "brow", "lip", "mouth", "tongue", "teeth")
"""Bone name words that make a bone part of the expression code (the rest is body)."""

RIGIFY_COPIES = ("org-", "mch-", "def-")
"""Rigify's copies of a bone beside its control (original, mechanism, deform), compared in lower case."""

LEAF_WORDS = ("end", "top", "tip", "nub")
"""Words of leaf/helper bones that never rotate on their own (Mixamo ``HeadTop_End``)."""

_LEFT = re.compile(r"(^left|[._\- ]l$|_l_|\.l\.|^l_)")
_RIGHT = re.compile(r"(^right|[._\- ]r$|_r_|\.r\.|^r_)")


def strip_prefix(name: str) -> str:
    """``mixamorig:LeftEye`` -> ``LeftEye`` (any known rig prefix, case-insensitively)."""
    lowered = name.lower()
    for prefix in RIG_PREFIXES:
        if lowered.startswith(prefix):
            return name[len(prefix):]
    return name


def _words(name: str) -> list[str]:
    """Lower-case words of a bone name: camel case, dots, underscores, dashes and spaces split."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", strip_prefix(name))
    return [word for word in re.split(r"[._\-: ]+", spaced.lower()) if word]


def side(name: str) -> str | None:
    """'L', 'R' or None: ``LeftEye``, ``eye.L``, ``eye_L``, ``DEF-eye.L``, ``J_Adj_L_FaceEye``."""
    lowered = name.lower()
    bare = strip_prefix(name).lower()
    if _LEFT.search(bare) or lowered.startswith(("j_adj_l_", "j_bip_l_")):
        return "L"
    if _RIGHT.search(bare) or lowered.startswith(("j_adj_r_", "j_bip_r_")):
        return "R"
    return None


def face_part(name: str) -> str | None:
    """The face part a bone name names (one of ``FACE_PARTS``), or None for body and leaf bones."""
    words = _words(name)
    if any(word in LEAF_WORDS for word in words):
        return None
    for part in FACE_PARTS:
        if part in words:
            return part
    for part in FACE_PARTS:
        if any(word.startswith(part) or word.endswith(part) for word in words):
            return part
    return None


def find_bone(bone_names: Sequence[str], part: str, wanted_side: str | None = None) -> str | None:
    """The bone of that part (and side, when given), preferring a plain name (``Head`` over
    ``Forehead``); None when the rig has none."""
    matches = [name for name in bone_names if face_part(name) == part and (wanted_side is None or side(name) == wanted_side)]
    exact = [name for name in matches if part in _words(name)]
    return (exact or matches or [None])[0]


def is_face_bone(name: str) -> bool:
    return face_part(name) is not None


def is_mechanism(name: str) -> bool:
    """A Rigify mechanism bone (``MCH-``): the rig's own machinery, never posed by the animator."""
    return name.lower().startswith("mch-")


def controls_first(bone_names: Sequence[str]) -> list[str]:
    """One bone per Rigify bone: of ``jaw``, ``ORG-jaw`` and ``DEF-jaw`` the control (no prefix) when
    there is one, else the first copy; other names pass. The rig's order is kept."""
    def base(name: str) -> str:
        lowered = name.lower()
        return next((lowered[len(prefix):] for prefix in RIGIFY_COPIES if lowered.startswith(prefix)), lowered)

    chosen: dict[str, str] = {}
    for name in bone_names:
        if base(name) not in chosen or base(name) == name.lower():
            chosen[base(name)] = name
    kept = set(chosen.values())
    return [name for name in bone_names if name in kept]
