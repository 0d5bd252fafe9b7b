"""The style prior on its own: sampling contract, checkpoints, encoders and reference-image checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from backend.errors import InvalidInput
from backend.models.style_prior.checkpoint import load_style_prior, read_style_prior_info, save_style_prior
from backend.models.style_prior.config import EncoderConfig, StylePriorConfig, preset
from backend.models.style_prior.prior import StylePrior
from backend.models.style_prior.reference_image import load_reference_image
from blender_addon.formats.errors import FormatError


@pytest.fixture
def prior() -> StylePrior:
    torch.manual_seed(0)
    model = StylePrior(preset("tiny")).eval()
    model.set_w_statistics(torch.linspace(-1, 1, 32), torch.linspace(0.5, 2.0, 32))
    return model


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_predicted_w_has_one_w_dim_vector_per_image(prior, images):
    condition = prior.embed(images)
    assert condition.shape == (3, 32)
    w = prior.sample(condition, steps=4, seed=0)
    assert w.shape == (3, 32)
    assert torch.isfinite(w).all()


def test_training_loss_is_a_scalar_that_reaches_encoder_and_denoiser(prior, images):
    loss = prior.training_loss(torch.randn(3, 32), images, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.ndim == 0
    assert prior.encoder.project.weight.grad.abs().sum() > 0
    assert prior.denoiser.proj_in.weight.grad.abs().sum() > 0
    assert prior.denoiser.clip_mean.grad is None, "w statistics are fixed, not trained"


def test_same_seed_gives_the_same_w_and_another_seed_a_different_one(prior, images):
    condition = prior.embed(images)
    first = prior.sample(condition, steps=5, guidance_scale=2.0, seed=7)
    again = prior.sample(condition, steps=5, guidance_scale=2.0, seed=7)
    other = prior.sample(condition, steps=5, guidance_scale=2.0, seed=8)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_guidance_scale_zero_equals_the_unconditional_model(prior, images):
    condition = prior.embed(images)
    guided_zero = prior.sample(condition, steps=6, guidance_scale=0.0, seed=3)
    unconditional = prior.sample(None, steps=6, seed=3, batch_size=3)
    conditional = prior.sample(condition, steps=6, guidance_scale=1.0, seed=3)
    torch.testing.assert_close(guided_zero, unconditional, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(conditional, unconditional, atol=1e-3), "the image must matter at guidance 1"


def test_w_statistics_undo_the_normalisation(prior):
    w = torch.randn(4, 32) * 3 + 1
    torch.testing.assert_close(prior.denormalize_w(prior.normalize_w(w)), w)


def test_checkpoint_round_trips_weights_config_and_samples_exactly(prior, images, tmp_path):
    save_style_prior(tmp_path / "run", prior, {"generator": "job:abc", "steps": 3})
    loaded, extra = load_style_prior(tmp_path / "run")
    assert extra == {"generator": "job:abc", "steps": 3}
    assert loaded.config == prior.config
    for name, tensor in prior.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    condition = prior.embed(images)
    assert torch.equal(loaded.sample(condition, steps=3, seed=1), prior.sample(condition, steps=3, seed=1))


def test_loading_a_checkpoint_of_another_kind_names_the_problem(tmp_path):
    from backend.formats.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "gan", "eg3d", preset("tiny"), {})
    with pytest.raises(FormatError, match="style-prior"):
        read_style_prior_info(tmp_path / "gan")


def test_config_refuses_an_unknown_encoder_and_mismatched_sizes():
    with pytest.raises(FormatError, match="encoder.kind"):
        replace(preset("tiny"), encoder=EncoderConfig(kind="resnet"))
    with pytest.raises(FormatError, match="condition_dim"):
        replace(preset("tiny"), condition_dim=64)
    with pytest.raises(FormatError, match="clip_model"):
        replace(preset("tiny"), encoder=EncoderConfig(kind="clip"))


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny random CLIP vision model saved the way users keep real ones (save_pretrained)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = tmp_path_factory.mktemp("clip-vision")
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=24)
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    return folder


def test_clip_encoder_loads_local_weights_and_stays_frozen(clip_folder, images, tmp_path):
    config = StylePriorConfig(w_dim=32, condition_dim=24, denoiser=preset("tiny").denoiser, diffusion=preset("tiny").diffusion,
                              encoder=EncoderConfig(kind="clip", clip_model=str(clip_folder)))
    prior = StylePrior(config)
    prior.train()
    assert not prior.encoder.training
    embedding = prior.embed(images)
    assert embedding.shape == (3, 24)
    prior.training_loss(torch.randn(3, 32), images).backward()
    assert all(parameter.grad is None for parameter in prior.encoder.parameters())
    save_style_prior(tmp_path / "run", prior)
    loaded, _ = load_style_prior(tmp_path / "run")
    assert torch.equal(loaded.embed(images), prior.eval().embed(images))
    assert torch.equal(loaded.sample(embedding, steps=2), prior.sample(embedding, steps=2))


def test_clip_encoder_folder_without_weights_is_reported_as_missing_model(tmp_path):
    from backend.errors import ModelMissing

    config = replace(preset("tiny"), condition_dim=24, encoder=EncoderConfig(kind="clip", clip_model=str(tmp_path)))
    with pytest.raises(ModelMissing, match="CLIP"):
        StylePrior(config)


# --- reference images --------------------------------------------------------------------------

def _save(path, array: np.ndarray, mode: str | None = None):
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(path)
    return path


def test_rgb_reference_becomes_encoder_sized_tensor_in_minus_one_to_one(tmp_path):
    array = np.zeros((64, 64, 3), np.uint8)
    array[:, 32:] = 255
    tensor = load_reference_image(_save(tmp_path / "ref.png", array), 32)
    assert tensor.shape == (1, 3, 32, 32)
    assert tensor.min() == -1.0 and tensor.max() == 1.0


def test_grayscale_references_8_and_16_bit_are_used_as_gray_rgb(tmp_path):
    gray8 = load_reference_image(_save(tmp_path / "g8.png", np.full((40, 40), 128, np.uint8)), 32)
    gray16 = load_reference_image(_save(tmp_path / "g16.png", np.full((40, 40), 32896, np.uint16)), 32)
    assert gray8.shape == gray16.shape == (1, 3, 32, 32)
    torch.testing.assert_close(gray8, gray16, atol=1e-3, rtol=0)
    assert torch.equal(gray8[:, 0], gray8[:, 2])


def test_alpha_is_composited_over_the_background_and_full_transparency_refused(tmp_path):
    array = np.zeros((32, 32, 4), np.uint8)
    array[..., 0] = 255
    array[:, :16, 3] = 255
    tensor = load_reference_image(_save(tmp_path / "cutout.png", array), 32)
    assert torch.allclose(tensor[0, :, :, :12], torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1))
    assert torch.allclose(tensor[0, :, :, 20:], torch.ones(3, 1, 1)), "transparent parts show the white background"
    with pytest.raises(InvalidInput, match="transparent") as caught:
        load_reference_image(_save(tmp_path / "empty.png", np.zeros((32, 32, 4), np.uint8)), 32)
    assert caught.value.field == "image"


def test_non_image_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(InvalidInput, match="not an image") as caught:
        load_reference_image(path, 32, field="reference_image")
    assert caught.value.field == "reference_image" and "PNG" in caught.value.hint
    with pytest.raises(InvalidInput, match="no file"):
        load_reference_image(tmp_path / "missing.png", 32)


def test_too_small_or_too_elongated_images_are_refused_and_wide_ones_centre_cropped(tmp_path):
    with pytest.raises(InvalidInput, match="too small"):
        load_reference_image(_save(tmp_path / "tiny.png", np.zeros((8, 8, 3), np.uint8)), 32)
    with pytest.raises(InvalidInput, match="crop"):
        load_reference_image(_save(tmp_path / "banner.png", np.zeros((32, 100, 3), np.uint8)), 32)
    wide = np.zeros((40, 60, 3), np.uint8)
    wide[:, :10] = 255  # only in the left margin, which the centre crop removes
    assert load_reference_image(_save(tmp_path / "wide.png", wide), 32).max() == -1.0
