"""The add-on's panels speak the backend's language: every button's job params pass the backend's own
schema for its kind, and a step whose input is missing names the step that makes it."""

from __future__ import annotations

import json

import pytest

from backend.jobs.registry import get_kind
from blender_addon.formats.errors import FormatError

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.blender


@pytest.fixture
def settings():
    """The add-on's scene settings in a fresh Blender (registered from the repository)."""
    import blender_addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    try:
        yield bpy.context.scene.avatar_foundry
    finally:
        blender_addon.unregister()


def _valid(kind: str, params: dict) -> dict:
    """The params as the server would store them (raises on any field the schema refuses)."""
    return get_kind(kind).params.model_validate(params).model_dump()


def test_generate_panel_makes_a_multiview_request_with_the_chosen_controls_and_attributes(settings, tmp_path):
    generate = settings.generate
    assert _valid("multiview", generate.params())["controlnets"] == {"pose": "", "depth": ""}  # paper default: pose + depth
    catalog = tmp_path / "attributes.json"
    catalog.write_text(json.dumps({"hair": ["red hair", "a bun"], "age": ["young", "old"]}))
    generate.use_depth, generate.use_normal, generate.normal_weight = False, True, 0.5
    generate.pose_model, generate.attributes_file, generate.per_view, generate.resolution = "my-pose", str(catalog), 3, 256
    params = _valid("multiview", generate.params())
    assert params["controlnets"] == {"pose": "my-pose", "normal": ""} and params["control_weights"] == {"pose": 1.0, "normal": 0.5}
    assert params["attributes"]["hair"] == ["red hair", "a bun"] and params["per_view"] == 3 and params["resolution"] == 256
    catalog.write_text("not json")
    with pytest.raises(FormatError, match="not a readable JSON"):
        generate.params()


def test_training_and_avatar_panels_make_valid_requests_and_name_the_step_that_is_missing(settings):
    with pytest.raises(FormatError, match="Generate Multi-view Images"):
        settings.train.params()
    settings.train.dataset, settings.train.config, settings.train.total_images = "job:abc", "tiny", 800
    assert _valid("train-eg3d", settings.train.params())["total_images"] == 800
    avatar = settings.avatar
    with pytest.raises(FormatError, match="Train 3D GAN"):
        avatar.params()
    avatar.checkpoint, avatar.seed, avatar.truncation = "job:gan", 7, 0.5
    assert _valid("generate-avatar", avatar.params())["truncation_psi"] == 0.5
    assert _valid("train-style-prior", avatar.style_prior_params())["generator"] == "job:gan"
    with pytest.raises(FormatError, match="Train Style Prior"):
        avatar.params(reference_name="reference.png")
    avatar.style_prior = "job:prior"
    guided = _valid("generate-avatar", avatar.params(reference_name="reference.png"))
    assert guided["style_prior"] == "job:prior" and guided["reference_image"] == "reference.png"


def test_deferred_and_animate_panels_make_valid_requests(settings):
    deferred = settings.deferred
    assert _valid("train-deferred", deferred.params(image_size=256))["resolution"] == 256
    deferred.crop, deferred.mode = 128, "direct"
    assert _valid("train-deferred", deferred.params(image_size=512))["resolution"] == 128
    with pytest.raises(FormatError, match="Train Renderer"):
        settings.animate.params()
    settings.animate.checkpoint = "job:renderer"
    assert _valid("animate", settings.animate.params()) == {"checkpoint": "job:renderer", "batch_size": None, "fps": None}
