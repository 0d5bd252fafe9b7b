"""Which shape keys locate a landmark, across the naming families imported characters arrive with.

ARKit (``mouthSmileLeft``), its ``_L``/``_R`` spelling (Face Cap, many Blender exports:
``mouthSmile_L``), VRoid's ``Fcl_*`` keys, the VRM expression presets (1.0 ``blinkLeft``/``aa``,
0.x ``Blink_L``/``A``) and Ready Player Me's Oculus visemes (``viseme_aa``, ``viseme_I``) for heads
without ARKit keys. A landmark has several alternatives, tried in order; an alternative is a list of
parts, each a key name and, for a key that moves both sides at once (``browInnerUp``,
``Fcl_BRW_Angry``), the side of the face whose vertices count. Names compare case-insensitively.
Plain Python, so the choice is testable without Blender.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class KeyPart:
    key: str
    side: str | None = None
    """'L' or 'R': only that half of the face (a symmetric key); None: the whole key."""


def _sided(left: Sequence[str], right: Sequence[str], both: Sequence[str] = ()) -> dict[str, list[list[KeyPart]]]:
    """Per side, the one-sided key names, then the symmetric ones split by side."""
    return {
        side: [[KeyPart(name)] for name in names] + [[KeyPart(name, side)] for name in both]
        for side, names in (("L", left), ("R", right))
    }


_EYES = _sided(("eyeBlinkLeft", "eyeBlink_L", "Fcl_EYE_Close_L", "blink_l", "blinkLeft"),
               ("eyeBlinkRight", "eyeBlink_R", "Fcl_EYE_Close_R", "blink_r", "blinkRight"),
               ("eyeBlink", "Fcl_EYE_Close", "blink"))
_MOUTH = _sided(("mouthSmileLeft", "mouthSmile_L", "mouthStretchLeft", "mouthStretch_L"),
                ("mouthSmileRight", "mouthSmile_R", "mouthStretchRight", "mouthStretch_R"),
                ("mouthSmile", "Fcl_MTH_I", "Fcl_MTH_Joy", "ih", "viseme_I", "happy"))
_BROWS = {
    side: [[KeyPart(down)] for down in (f"browDown{word}", f"browDown_{side}")]
    + [[KeyPart(outer), KeyPart("browInnerUp", side)] for outer in (f"browOuterUp{word}", f"browOuterUp_{side}")]
    + [[KeyPart(outer)] for outer in (f"browOuterUp{word}", f"browOuterUp_{side}")]
    + [[KeyPart(name, side)] for name in ("browInnerUp", "Fcl_BRW_Angry", "Fcl_BRW_Surprised", "Fcl_BRW_Sorrow")]
    for side, word in (("L", "Left"), ("R", "Right"))
}
"""Brows at mid-brow: ``browDown`` moves the whole brow; outer and inner raises together span it."""

KEY_ALTERNATIVES: dict[str, list[list[KeyPart]]] = {
    "chin": [[KeyPart(name)] for name in ("jawOpen", "Fcl_MTH_A", "aa", "A", "viseme_aa", "mouthOpen")],
    "nose_tip": [[KeyPart("noseSneerLeft"), KeyPart("noseSneerRight")], [KeyPart("noseSneer_L"), KeyPart("noseSneer_R")]],
    "eye_L": _EYES["L"], "eye_R": _EYES["R"],
    "mouth_L": _MOUTH["L"], "mouth_R": _MOUTH["R"],
    "brow_L": _BROWS["L"], "brow_R": _BROWS["R"],
}
"""Landmark -> alternatives (first match wins) -> parts whose moved vertices are averaged."""

PEAK_LANDMARKS = ("chin", "nose_tip")
"""Landmarks at the vertex a key moves most (the chin's tip); the others at the centre of the
region a key moves (mid-brow, the eye under a blink, the mouth corner)."""


def key_parts(landmark: str, key_names: Iterable[str]) -> list[tuple[KeyPart, str]] | None:
    """The first alternative whose keys all exist: (part, the key's real name) each; None if none does."""
    by_lower = {name.lower(): name for name in key_names}
    for alternative in KEY_ALTERNATIVES.get(landmark, ()):
        if all(part.key.lower() in by_lower for part in alternative):
            return [(part, by_lower[part.key.lower()]) for part in alternative]
    return None
