"""Random expressions for a deferred dataset: sparse and plausible, like faces people make.

A face shows a few expressions at once (a smile and a blink, an open jaw), not half of every key at
random strengths, which no character ever shows. So each sample turns on one to ``MAX_ACTIVE_KEYS``
of the keys that move the render, at a clear strength, and gives the face bones that move it a small
rotation (the jaw only opens; the head and neck stay still so the head stays framed). Channels that
move nothing stay at rest. Plain Python, so the sampling is testable without Blender.
"""

from __future__ import annotations

import random
from typing import Collection, Sequence

from .rig_naming import face_part

MAX_ACTIVE_KEYS = 3
KEY_STRENGTH = (0.35, 1.0)
BONE_LIMIT = 0.125
"""Radians either way for an eye, brow or lip bone."""
JAW_OPENING = (0.0, 0.35)
"""Radians the jaw opens (about its X axis) at most."""


def _bone_value(name: str, rng: random.Random) -> float:
    _, _, rest = name.partition(":")
    bone_name, _, axis = rest.rpartition(":")
    part = face_part(bone_name)
    if part in ("head", "neck"):
        return 0.0
    if part == "jaw":
        return rng.uniform(*JAW_OPENING) if axis == "rx" else 0.0
    return rng.uniform(-BONE_LIMIT, BONE_LIMIT)


def varies(name: str) -> bool:
    """Whether random expressions vary this layout entry at all: keys, and face bones other than the
    head and neck (kept still) on their axes (the jaw only about X)."""
    if name.startswith("key:"):
        return True
    _, _, rest = name.partition(":")
    bone_name, _, axis = rest.rpartition(":")
    part = face_part(bone_name)
    return part not in ("head", "neck") and (part != "jaw" or axis == "rx")


def sample_expression(layout: Sequence[str], moving: Collection[str], rng: random.Random) -> list[float]:
    """One random code of ``layout``: a few of the ``moving`` keys on, the moving face bones turned a little."""
    keys = [name for name in layout if name.startswith("key:") and name in moving]
    active = set(rng.sample(keys, rng.randint(1, min(MAX_ACTIVE_KEYS, len(keys))))) if keys else set()
    code = []
    for name in layout:
        if name in active:
            code.append(rng.uniform(*KEY_STRENGTH))
        elif name.startswith("bone:") and name in moving:
            code.append(_bone_value(name, rng))
        else:
            code.append(0.0)
    return code
