"""Plain-Python rules for imported characters (no Blender): which shape keys locate a landmark across
naming families, and what a random expression of a deferred dataset looks like."""

from __future__ import annotations

import random

from blender_addon.core.expression_sampling import MAX_ACTIVE_KEYS, sample_expression, varies
from blender_addon.core.landmark_keys import KeyPart, key_parts
from blender_addon.core.pose_skeleton import LANDMARK_CONVENTION, LANDMARK_NAMES, REQUIRED_LANDMARKS


def test_every_landmark_has_one_written_convention():
    """Each landmark an artist paints or Find Landmarks places has its place written down once, in
    OpenPose's terms for the body keypoints (ears at the ear, eyes at the pupil, neck at the base)."""
    assert set(LANDMARK_CONVENTION) == set(LANDMARK_NAMES)
    assert "pupil" in LANDMARK_CONVENTION["eye_L"] and "base of the neck between the shoulders" in LANDMARK_CONVENTION["neck"]
    assert set(REQUIRED_LANDMARKS) <= set(LANDMARK_NAMES)


def test_key_families_are_recognised_case_insensitively():
    """Face Cap's ``_L`` spelling, VRoid's ``Fcl_*`` keys (a symmetric key split by side) and VRM presets
    locate the same landmarks as ARKit's names; the brows prefer a key that moves the whole brow."""
    assert key_parts("eye_L", ["EyeBlink_L", "jawOpen"]) == [(KeyPart("eyeBlink_L"), "EyeBlink_L")]
    assert key_parts("mouth_R", ["Fcl_MTH_I"]) == [(KeyPart("Fcl_MTH_I", "R"), "Fcl_MTH_I")]
    assert key_parts("chin", ["Fcl_MTH_A", "Fcl_EYE_Close"]) == [(KeyPart("Fcl_MTH_A"), "Fcl_MTH_A")]
    assert key_parts("eye_R", ["blinkRight"]) == [(KeyPart("blinkRight"), "blinkRight")]
    assert key_parts("brow_L", ["browOuterUp_L", "browInnerUp", "browDown_L"]) == [(KeyPart("browDown_L"), "browDown_L")]
    assert key_parts("brow_L", ["browOuterUpLeft", "browInnerUp"]) == [(KeyPart("browOuterUpLeft"), "browOuterUpLeft"),
                                                                     (KeyPart("browInnerUp", "L"), "browInnerUp")]
    assert key_parts("nose_tip", ["noseSneer_L"]) is None  # both sides are needed for the middle


def test_random_expressions_are_sparse_and_leave_still_channels_at_rest():
    """A random expression turns on one to three of the keys that move the render at a clear strength,
    never a key that moves nothing, never the head or neck, and opens the jaw only about X."""
    layout = [f"key:k{i}" for i in range(40)] + ["key:still", "bone:jaw:rx", "bone:jaw:ry", "bone:Head:rx", "bone:eye.L:rz"]
    moving = [name for name in layout if name != "key:still"]
    rng = random.Random(7)
    counts = set()
    for _ in range(50):
        code = dict(zip(layout, sample_expression(layout, moving, rng)))
        active = [name for name, value in code.items() if name.startswith("key:") and value != 0.0]
        counts.add(len(active))
        assert 1 <= len(active) <= MAX_ACTIVE_KEYS and all(code[name] >= 0.35 for name in active)
        assert code["key:still"] == code["bone:Head:rx"] == code["bone:jaw:ry"] == 0.0
        assert 0.0 <= code["bone:jaw:rx"] <= 0.35
    assert counts == {1, 2, 3}
    assert [varies(name) for name in ("key:x", "bone:jaw:rx", "bone:jaw:ry", "bone:mixamorig:Neck:rx", "bone:LeftEye:ry")] == \
        [True, True, False, False, True]
