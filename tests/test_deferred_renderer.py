"""The deferred renderer's model on a tiny random base: channels, expression identity, fixed noise, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from backend.errors import InvalidInput
from backend.models.deferred.baking import read_condition_bundle
from backend.models.deferred.channels import ChannelLayout
from backend.models.deferred.checkpoint import build_renderer, load_renderer, save_renderer
from backend.models.deferred.conditions import ConditionTensors, expression_reorder, read_render
from backend.models.deferred.renderer import DeferredRendererConfig
from backend.models.diffusion_loading import load_base_components
from blender_addon.formats.condition_bundle import read_bundle
from blender_addon.formats.errors import FormatError
from tests.fixtures.deferred import EXPRESSION_NAMES, write_sphere_dataset

TRIPLANE_CHANNELS = 4


def tiny_config(base: str, **changes) -> DeferredRendererConfig:
    settings = dict(base=base, expression_names=tuple(EXPRESSION_NAMES), channels=ChannelLayout(triplane_channels=TRIPLANE_CHANNELS),
                    triplane_resolution=16, num_inference_steps=3, prediction_type="v_prediction", zero_terminal_snr=True)
    settings.update(changes)
    return DeferredRendererConfig(**settings)


@pytest.fixture(scope="module")
def renderer(tiny_models):
    return build_renderer(tiny_config(tiny_models.names["base"]), tiny_models.store)


@pytest.fixture(scope="module")
def sphere_conditions(deferred_dataset) -> ConditionTensors:
    bundle = read_bundle(deferred_dataset)
    return ConditionTensors.stack([read_render(deferred_dataset, bundle, render, tuple(EXPRESSION_NAMES)) for render in bundle.renders[:3]])


def test_controlnet_input_has_the_documented_channel_count(renderer, sphere_conditions):
    layout = renderer.config.channels
    assert layout.count == 7 + 3 * TRIPLANE_CHANNELS == len(layout.names())
    assert renderer.controlnet.controlnet_cond_embedding.conv_in.in_channels == layout.count
    control = renderer.control_input(sphere_conditions)
    assert control.shape[1] == layout.count
    background = sphere_conditions.mask < 0.5
    assert torch.all(control[:, 0][background] == -1.0), "depth is -1 outside the mask"
    assert torch.all(control[:, 7:].permute(0, 2, 3, 1)[background] == 0.0), "features are zero outside the mask"
    assert control[:, 7:].permute(0, 2, 3, 1)[~background].abs().sum() > 0


def test_expression_layers_start_as_the_identity(tiny_models, renderer):
    """Before training, the expression-conditioned UNet computes exactly what the base UNet computes."""
    base_unet = load_base_components(tiny_models.store.resolve(tiny_models.names["base"])).unet
    generator = torch.Generator().manual_seed(3)
    latents = torch.randn((2, 4, 16, 16), generator=generator)
    text = torch.randn((2, 77, base_unet.config.cross_attention_dim), generator=generator)
    expression = torch.randn((2, renderer.config.expression_tokens, base_unet.config.cross_attention_dim), generator=generator)
    timesteps = torch.tensor([10, 900])
    with torch.no_grad():
        reference = base_unet(latents, timesteps, encoder_hidden_states=text).sample
        conditioned = renderer.base.unet(latents, timesteps, encoder_hidden_states=torch.cat([text, expression], 1)).sample
        assert torch.allclose(reference, conditioned, atol=1e-5)
        assert len(renderer.expression_layers) >= 2
        projection = renderer.expression_layers[0].to_out[0]
        projection.weight.add_(0.1)
        try:
            changed = renderer.base.unet(latents, timesteps, encoder_hidden_states=torch.cat([text, expression], 1)).sample
        finally:
            projection.weight.zero_()
    assert not torch.allclose(reference, changed, atol=1e-4), "the expression layers sit in the UNet's path"


def test_same_seed_gives_identical_frames_whatever_the_batch(renderer, sphere_conditions):
    first = renderer.render(sphere_conditions)
    again = renderer.render(sphere_conditions)
    alone = renderer.render(ConditionTensors(*(getattr(sphere_conditions, name)[1:2] for name in ("depth", "canonical", "normal", "mask", "expression"))))
    other_seed = renderer.render(sphere_conditions, seed=renderer.config.seed + 1)
    assert first.shape == (3, 3, 32, 32) and torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert torch.allclose(first[1:2], alone, atol=1e-4)
    assert not torch.allclose(first, other_seed, atol=1e-3)


def test_bundle_without_canonical_coordinates_is_refused_with_the_pass_named(tmp_path):
    bundle_dir = write_sphere_dataset(tmp_path / "bundle", size=16, with_target=False, passes_left_out=("canonical",))
    with pytest.raises(InvalidInput) as caught:
        read_condition_bundle(bundle_dir)
    assert caught.value.field == "renders[].passes.canonical"
    assert "canonical" in caught.value.hint


def test_expression_code_of_the_wrong_length_is_refused(renderer, sphere_conditions):
    short = ConditionTensors(sphere_conditions.depth, sphere_conditions.canonical, sphere_conditions.normal,
                             sphere_conditions.mask, sphere_conditions.expression[:, :2])
    with pytest.raises(InvalidInput) as caught:
        renderer.render(short)
    assert caught.value.field == "expression"
    assert "2 numbers" in caught.value.message and "3" in caught.value.message


def test_bundle_from_another_rig_is_refused_and_a_reordered_layout_is_reordered():
    assert expression_reorder(["b", "a", "c"], ("a", "b", "c")) == [1, 0, 2]
    with pytest.raises(FormatError) as caught:
        expression_reorder(["a", "b", "smile"], ("a", "b", "c"))
    assert "missing c" in caught.value.message and "unknown smile" in caught.value.message


def test_zero_terminal_snr_with_epsilon_prediction_is_refused():
    with pytest.raises(ValueError, match="v_prediction"):
        tiny_config("tiny", prediction_type="epsilon", zero_terminal_snr=True)


def test_checkpoint_round_trips_and_a_config_that_does_not_fit_its_weights_is_refused(tiny_models, renderer, sphere_conditions, tmp_path):
    with torch.no_grad():
        renderer.triplanes.planes.mul_(1.5)
    save_renderer(tmp_path / "run", renderer)
    loaded = load_renderer(tmp_path / "run", tiny_models.store)
    assert torch.equal(loaded.render(sphere_conditions), renderer.render(sphere_conditions))

    config_path = tmp_path / "run" / "config.json"
    document = json.loads(config_path.read_text())
    document["config"]["channels"]["triplane_channels"] = TRIPLANE_CHANNELS * 2
    config_path.write_text(json.dumps(document))
    with pytest.raises(InvalidInput) as caught:
        load_renderer(tmp_path / "run", tiny_models.store)
    assert "do not match its config.json" in caught.value.message
    assert "controlnet.controlnet_cond_embedding.conv_in.weight" in caught.value.message or "triplanes.planes" in caught.value.message

    document["config"]["channels"]["triplane_channels"] = TRIPLANE_CHANNELS
    document["config"]["sparkle"] = 1
    config_path.write_text(json.dumps(document))
    with pytest.raises(InvalidInput) as caught:
        load_renderer(tmp_path / "run", tiny_models.store)
    assert caught.value.field.endswith("config.sparkle")
