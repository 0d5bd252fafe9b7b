"""Image-guided avatars: a reference image becomes a w for the generator, with a record of how."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from backend.errors import InvalidInput
from backend.models.eg3d.generator import load_generator
from backend.models.style_prior.image_guidance import (ImageGuidance, load_prior_for_generator, predict_w,
                                                       write_record)
from training.style_prior.pairs import frontal_labels, render, sample_w


@pytest.fixture(scope="module")
def reference_png(style_prior_generator_dir, tmp_path_factory):
    """A frontal render of a known avatar, saved as an artist's PNG would be (8-bit RGB)."""
    generator = load_generator(style_prior_generator_dir)
    known = sample_w(generator, 1, torch.Generator().manual_seed(777), 1.0, "cpu")
    image = render(generator, known, frontal_labels(1, "cpu"))[0]
    path = tmp_path_factory.mktemp("reference") / "hero.png"
    Image.fromarray(((image + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()).save(path)
    return path, known[0]


def test_reference_image_gives_a_w_that_re_renders_close_to_it(trained_style_prior, style_prior_generator_dir, reference_png):
    path, known = reference_png
    generator = load_generator(style_prior_generator_dir)
    prior = load_prior_for_generator(trained_style_prior, generator.config.w_dim, "cpu")
    style = predict_w(prior, ImageGuidance(str(trained_style_prior), str(path), steps=10, guidance_scale=1.5, seed=0), path)
    assert style.w.shape == (32,) and style.w.dtype == np.float32
    labels = frontal_labels(1, "cpu")
    target = render(generator, known[None], labels)
    predicted_error = float(((render(generator, torch.from_numpy(style.w)[None], labels) - target) ** 2).mean())
    random_error = float(((render(generator, sample_w(generator, 1, torch.Generator().manual_seed(5), 1.0, "cpu"), labels) - target) ** 2).mean())
    print(f"re-render MSE: predicted w {predicted_error:.4f}, random w {random_error:.4f}")
    assert predicted_error < random_error


def test_seed_and_guidance_change_the_avatar_and_the_same_settings_repeat_it(trained_style_prior, reference_png):
    path, _ = reference_png
    prior = load_prior_for_generator(trained_style_prior, 32, "cpu")

    def w_for(seed, scale):
        return predict_w(prior, ImageGuidance("run", str(path), steps=6, guidance_scale=scale, seed=seed), path).w

    assert np.array_equal(w_for(1, 2.0), w_for(1, 2.0))
    assert not np.allclose(w_for(1, 2.0), w_for(2, 2.0))
    assert not np.allclose(w_for(1, 2.0), w_for(1, 0.0))


def test_record_holds_predicted_w_the_encoders_view_and_settings(trained_style_prior, reference_png, tmp_path):
    path, _ = reference_png
    prior = load_prior_for_generator(trained_style_prior, 32, "cpu")
    style = predict_w(prior, ImageGuidance("job:prior1", str(path), steps=4, guidance_scale=2.0, seed=3), path)
    names = write_record(tmp_path, style)
    assert sorted(names) == ["predicted_w.npy", "reference.png", "style_prior.json"]
    assert np.array_equal(np.load(tmp_path / "predicted_w.npy"), style.w)
    assert Image.open(tmp_path / "reference.png").size == (32, 32)
    record = json.loads((tmp_path / "style_prior.json").read_text())
    assert record["style_prior"] == "job:prior1" and record["image"] == "hero.png"
    assert (record["steps"], record["guidance_scale"], record["seed"], record["encoder"]) == (4, 2.0, 3, "conv")
    assert np.allclose(record["w"], style.w)


def test_a_prior_for_another_generator_size_and_bad_settings_are_refused(trained_style_prior):
    with pytest.raises(InvalidInput, match="w of size 32") as caught:
        load_prior_for_generator(trained_style_prior, 512, "cpu")
    assert caught.value.field == "style_prior"
    with pytest.raises(InvalidInput) as caught:
        ImageGuidance("run", "ref.png", steps=0)
    assert caught.value.field == "prior_steps"
    with pytest.raises(InvalidInput) as caught:
        ImageGuidance("run", "ref.png", guidance_scale=-1)
    assert caught.value.field == "guidance_scale"
