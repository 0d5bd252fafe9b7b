"""Prompts, attributes, planning and pose confidence of the multi-view stage (no models needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.multiview.attributes import DEFAULT_ATTRIBUTE_CATALOG, load_catalog, sample_attributes
from backend.multiview.condition_images import depth_to_image, normal_to_image
from backend.multiview.generation import MultiviewSettings, plan_images
from backend.multiview.pose_confidence import pose_confidence
from backend.multiview.prompts import PromptSettings, build_prompts
from blender_addon.formats.cameras import orbit_label
from blender_addon.formats.condition_bundle import View, read_bundle
from blender_addon.formats.errors import FormatError
from tests.test_multiview_generation import write_bundle


@pytest.mark.parametrize("view_class, phrase", [("front", "front view"), ("side", "side view"), ("back", "back view")])
def test_each_view_class_gets_its_own_view_phrase(view_class, phrase):
    prompt, _ = build_prompts(PromptSettings("a clay figurine head"), view_class, [])
    assert prompt == f"a clay figurine head, {phrase}"
    others = {"front view", "side view", "back view"} - {phrase}
    assert not any(other in prompt for other in others)


def test_back_views_forbid_the_face_and_leave_out_face_attributes():
    attributes = [("hair colour", "red hair"), ("eye colour", "blue eyes"), ("expression", "smiling")]
    back_prompt, back_negative = build_prompts(PromptSettings("anime head"), "back", attributes)
    front_prompt, front_negative = build_prompts(PromptSettings("anime head"), "front", attributes)
    assert "red hair" in back_prompt and "blue eyes" not in back_prompt and "smiling" not in back_prompt
    assert "eyes" in back_negative and "nose" in back_negative and "mouth" in back_negative
    assert "blue eyes" in front_prompt and "nose" not in front_negative


def test_view_phrases_and_yaw_thresholds_are_configurable():
    settings = PromptSettings("toy head", front_phrase="facing the camera", front_max_degrees=20, back_min_degrees=160)
    view = View("v", orbit_label(30.0, 0.0), 30.0, 0.0, "front")
    assert settings.view_class_of(view) == "side"
    assert build_prompts(settings, "front", [])[0] == "toy head, facing the camera"
    with pytest.raises(FormatError, match="both yaw thresholds"):
        PromptSettings("toy head", front_max_degrees=20)


def test_attribute_sampling_is_seeded_and_reproducible():
    first = sample_attributes(DEFAULT_ATTRIBUTE_CATALOG, seed=7)
    assert first == sample_attributes(DEFAULT_ATTRIBUTE_CATALOG, seed=7)
    assert len(first) == 5 and len({category for category, _ in first}) == 5
    assert all(option in DEFAULT_ATTRIBUTE_CATALOG[category] for category, option in first)
    assert any(sample_attributes(DEFAULT_ATTRIBUTE_CATALOG, seed=s) != first for s in range(8, 12))
    assert 18 <= len(DEFAULT_ATTRIBUTE_CATALOG) <= 24


def test_a_user_attribute_file_replaces_the_defaults_and_bad_files_are_named(tmp_path):
    good = tmp_path / "attributes.json"
    good.write_text(json.dumps({"hat": ["top hat", "beret"], "scarf": ["red scarf"]}))
    catalog = load_catalog(good)
    assert sorted(option for _, option in sample_attributes(catalog, seed=1, count=5)) in (["red scarf", "top hat"], ["beret", "red scarf"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hat": []}))
    with pytest.raises(FormatError, match="non-empty list") as error:
        load_catalog(bad)
    assert error.value.field == "attributes.hat"


def test_every_planned_image_records_prompt_and_seed_and_plans_are_reproducible(tmp_path):
    bundle = read_bundle(write_bundle(tmp_path / "bundle", yaws=(0.0, 90.0, 180.0)))
    settings = MultiviewSettings(style="a plush toy head", base="b", controlnets={"pose": "p"}, per_view=2, seed=3)
    plan = plan_images(bundle, settings)
    assert len(plan) == 6 and len({image.file for image in plan}) == 6 and len({image.seed for image in plan}) == 6
    assert [image.view_class for image in plan] == ["front", "front", "side", "side", "back", "back"]
    assert all(image.prompt.startswith("a plush toy head, ") for image in plan)
    assert [(i.prompt, i.seed) for i in plan] == [(i.prompt, i.seed) for i in plan_images(bundle, settings)]


def test_pose_confidence_prefers_images_that_follow_the_rendered_silhouette():
    size = 48
    yy, xx = np.mgrid[0:size, 0:size]
    mask = (xx - 24) ** 2 + (yy - 24) ** 2 < 14 ** 2
    depth = np.where(mask, 2.0, 0.0).astype(np.float32)
    following = np.where(mask[..., None], [0.9, 0.6, 0.4], [0.1, 0.1, 0.1])
    shifted = np.roll(following, 14, axis=1)
    blank = np.full((size, size, 3), 0.1)
    scores = [pose_confidence(image, mask, depth) for image in (following, shifted, blank)]
    assert scores[0] > 0.9 and scores[0] > scores[1] > scores[2]
    assert all(0.0 <= score <= 1.0 for score in scores)


def test_depth_condition_is_brighter_where_nearer_and_black_outside():
    depth = np.array([[0.0, 2.0, 3.0]], np.float32)
    mask = depth > 0
    pixels = np.asarray(depth_to_image(depth, mask))[0, :, 0]
    assert pixels[0] == 0 and pixels[1] == 255 and 0 < pixels[2] < pixels[1]
    normal = np.array([[[0.0, 0.0, -1.0]]], np.float32)
    assert tuple(np.asarray(normal_to_image(normal, np.array([[True]])))[0, 0]) == (128, 128, 255)
