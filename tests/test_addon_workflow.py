"""The add-on's panels speak the backend's language: every button's job params pass the backend's own
schema for its kind, and a step whose input is missing names the step that makes it. The schemas are
checked by the backend's Python (``.venv``), as the server would, since Blender's Python has no backend."""

from __future__ import annotations

import json

import pytest

from blender_addon.formats.errors import FormatError
from tests.fixtures.addon import addon_settings as settings  # noqa: F401 (a fixture)
from tests.fixtures.blender_matrix import needs_blender, validated_job_params

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.blender


def test_generate_panel_makes_a_multiview_request_with_the_chosen_controls_and_attributes(settings, tmp_path):
    generate = settings.generate
    default = generate.params()
    catalog = tmp_path / "attributes.json"
    catalog.write_text(json.dumps({"hair": ["red hair", "a bun"], "age": ["young", "old"]}))
    generate.use_depth, generate.use_normal, generate.normal_weight = False, True, 0.5
    generate.pose_model, generate.attributes_file, generate.per_view, generate.resolution = "my-pose", str(catalog), 3, 256
    default, params = validated_job_params(("multiview", default), ("multiview", generate.params()))
    assert default["controlnets"] == {"pose": "", "depth": ""}  # paper default: pose + depth
    assert params["controlnets"] == {"pose": "my-pose", "normal": ""} and params["control_weights"] == {"pose": 1.0, "normal": 0.5}
    assert params["attributes"]["hair"] == ["red hair", "a bun"] and params["per_view"] == 3 and params["resolution"] == 256
    catalog.write_text("not json")
    with pytest.raises(FormatError, match="not a readable JSON"):
        generate.params()


def test_training_and_avatar_panels_make_valid_requests_and_name_the_step_that_is_missing(settings):
    with pytest.raises(FormatError, match="Generate Multi-view Images"):
        settings.train.params()
    settings.train.dataset, settings.train.config, settings.train.total_images = "job:abc", "tiny", 800
    avatar = settings.avatar
    with_default = avatar.params()
    assert "checkpoint" not in with_default  # an empty Generator: the backend's embedded default generator
    with pytest.raises(FormatError, match="Train 3D GAN"):
        avatar.style_prior_params()
    avatar.checkpoint, avatar.seed, avatar.truncation = "job:gan", 7, 0.5
    from_seed = avatar.params()
    with pytest.raises(FormatError, match="Train Style Prior"):
        avatar.params(reference_name="reference.png")
    avatar.style_prior = "job:prior"
    on_default, train, from_seed, prior, guided = validated_job_params(
        ("generate-avatar", with_default), ("train-eg3d", settings.train.params()), ("generate-avatar", from_seed),
        ("train-style-prior", avatar.style_prior_params()), ("generate-avatar", avatar.params(reference_name="reference.png")))
    assert on_default["checkpoint"] is None and on_default["seed"] == 0
    assert train["total_images"] == 800 and from_seed["truncation_psi"] == 0.5 and prior["generator"] == "job:gan"
    assert guided["style_prior"] == "job:prior" and guided["reference_image"] == "reference.png"


def test_deferred_and_animate_panels_make_valid_requests(settings):
    deferred = settings.deferred
    full = deferred.params(image_size=256)
    deferred.crop, deferred.mode = 128, "direct"
    cropped = deferred.params(image_size=512)
    deferred.prior, deferred.base, deferred.crop = "none", "sd15", 0  # a base typed before is not sent from scratch
    scratch = deferred.params(image_size=64)
    on_default = settings.animate.params()  # the rig and no renderer: the backend's embedded default renderer
    settings.animate.proxy = "NPHM"
    with pytest.raises(FormatError, match="Train Renderer"):  # the default knows no neural-head passes
        settings.animate.params()
    settings.animate.proxy = "RIG"
    settings.animate.checkpoint = "job:renderer"
    full, cropped, scratch, on_default, animate = validated_job_params(
        ("train-deferred", full), ("train-deferred", cropped), ("train-deferred", scratch), ("animate", on_default),
        ("animate", settings.animate.params()))
    assert full["resolution"] == 256 and cropped["resolution"] == 128 and full["prior"] == "latent-diffusion"
    assert scratch["prior"] == "none" and scratch["base"] == "" and scratch["resolution"] == 64
    assert on_default["checkpoint"] is None
    assert animate == {"checkpoint": "job:renderer", "batch_size": None, "fps": None}


@needs_blender((4, 5), "path properties that accept '//'")
def test_output_folders_beside_the_blend_file_are_not_drawn_as_errors(settings):
    """The output folders default to '//avatar_foundry/...' (beside the .blend file); Blender draws such a
    path in red unless its property says it accepts paths relative to the .blend file."""
    for group in (settings.conditions, settings.deferred, settings.animate):
        output = group.bl_rna.properties["output_dir"]
        assert output.default.startswith("//") and output.is_path_supports_blend_relative
