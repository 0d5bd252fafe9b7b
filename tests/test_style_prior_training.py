"""Training the style prior on a tiny generator's own renders: it learns, resumes, cancels safely."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from backend.errors import Cancelled, InvalidInput
from backend.formats.checkpoint import load_train_state
from backend.models.style_prior.checkpoint import load_style_prior
from backend.progress import SilentProgress
from tests.fixtures.style_prior import SHORT_RUN
from training.style_prior.pairs import RENDER_CHUNK, PairOptions, frontal_labels, make_pairs, render, sample_w
from training.style_prior.trainer import METRICS_NAME, StylePriorTrainOptions, train_style_prior


def test_pairs_are_w_with_renders_of_the_generators_output_size(style_prior_generator_dir):
    from backend.models.eg3d.generator import load_generator

    generator = load_generator(style_prior_generator_dir)
    w, images = make_pairs(generator, 3, PairOptions(), torch.Generator().manual_seed(0), "cpu")
    assert w.shape == (3, 32) and images.shape == (3, 3, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    again = render(generator, w, frontal_labels(3, "cpu"))
    assert torch.equal(render(generator, w, frontal_labels(3, "cpu")), again), "frontal renders are deterministic in eval mode"


def test_a_batch_of_pairs_larger_than_one_render_call_gives_the_same_images_as_one_by_one(style_prior_generator_dir):
    """Training pairs are rendered a few avatars per generator call (a batch of 32 at 512² in one call crashed
    CUDA's upsampling on an H200): every avatar's image is still its own render, whatever chunk it lands in."""
    from backend.models.eg3d.generator import load_generator

    generator = load_generator(style_prior_generator_dir)
    count = RENDER_CHUNK + 3
    w = sample_w(generator, count, torch.Generator().manual_seed(1), 1.0, "cpu")
    labels = frontal_labels(count, "cpu")
    together = render(generator, w, labels)
    one_by_one = torch.cat([render(generator, w[i:i + 1], labels[i:i + 1]) for i in range(count)])
    assert together.shape == (count, 3, 32, 32)
    assert torch.allclose(together, one_by_one, atol=1e-5)


def test_after_a_short_run_the_predicted_w_re_renders_closer_to_the_reference_than_a_random_w(trained_style_prior):
    """The issue's bar, measured in the generator's own image space (metrics.json, written by training)."""
    metrics = json.loads((trained_style_prior / METRICS_NAME).read_text())
    print("reconstruction:", json.dumps(metrics))
    assert metrics["steps"] == SHORT_RUN["steps"]
    assert metrics["predicted_w_image_mse"] < 0.75 * metrics["random_w_image_mse"]
    assert metrics["predicted_w_image_mse"] < metrics["mean_w_image_mse"], "the image must beat the average avatar"
    assert metrics["predicted_w_image_mse"] < metrics["unconditional_w_image_mse"], "guidance by the image must help"
    assert metrics["predicted_w_distance"] < metrics["random_w_distance"]


def test_the_prior_predicts_a_known_w_from_its_frontal_render(trained_style_prior, style_prior_generator_dir):
    """Directly, without the trainer's own evaluation: held-out avatars with seeds the run never saw."""
    from backend.models.eg3d.generator import load_generator

    generator = load_generator(style_prior_generator_dir)
    prior, extra = load_style_prior(trained_style_prior)
    assert extra["steps"] == SHORT_RUN["steps"] and extra["w_dim"] == 32
    rng = torch.Generator().manual_seed(12345)
    known = sample_w(generator, 6, rng, 1.0, "cpu")
    references = render(generator, known, frontal_labels(6, "cpu"))
    predicted = prior.sample(prior.embed(references), steps=10, guidance_scale=1.5, seed=0)
    random_w = sample_w(generator, 6, rng, 1.0, "cpu")
    def error(w):
        return float(((render(generator, w, frontal_labels(6, "cpu")) - references) ** 2).mean())
    assert error(predicted) < error(random_w)


def test_training_resumes_from_its_snapshot_and_continues_to_the_new_step_count(trained_style_prior, style_prior_generator_dir, tmp_path):
    run = shutil.copytree(trained_style_prior, tmp_path / "run")
    train_style_prior(style_prior_generator_dir, run, StylePriorTrainOptions(**{**SHORT_RUN, "steps": 52, "evaluation_avatars": 2}), SilentProgress())
    assert load_train_state(run)["step"] == 52
    assert json.loads((run / METRICS_NAME).read_text())["steps"] == 52
    with pytest.raises(InvalidInput, match="config") as caught:
        train_style_prior(style_prior_generator_dir, run, StylePriorTrainOptions(**{**SHORT_RUN, "config": "small", "steps": 60}), SilentProgress())
    assert caught.value.field == "config"
    (run / "train_state.safetensors").unlink()
    with pytest.raises(InvalidInput, match="no train_state") as caught:
        train_style_prior(style_prior_generator_dir, run, StylePriorTrainOptions(**{**SHORT_RUN, "w_statistics_samples": 8}), SilentProgress())
    assert caught.value.field == "out"


class CancelAfter(SilentProgress):
    def __init__(self, reports: int) -> None:
        super().__init__()
        self.limit = reports

    def update(self, fraction: float, stage: str) -> None:
        self.stop_requested = len(self.reports) >= self.limit
        super().update(fraction, stage)


def test_cancelling_keeps_a_resumable_snapshot_of_the_steps_done(style_prior_generator_dir, tmp_path):
    options = StylePriorTrainOptions(**{**SHORT_RUN, "steps": 8, "pair_reuse": 1, "batch_size": 4, "snapshot_every": 100, "evaluation_avatars": 2})
    with pytest.raises(Cancelled):
        train_style_prior(style_prior_generator_dir, tmp_path / "run", options, CancelAfter(3))
    done = load_train_state(tmp_path / "run")["step"]
    assert 1 <= done < 8
    assert load_style_prior(tmp_path / "run")[1]["steps"] == done
    train_style_prior(style_prior_generator_dir, tmp_path / "run", options, SilentProgress())
    assert load_train_state(tmp_path / "run")["step"] == 8


def test_options_refuse_a_clip_encoder_without_weights_and_zero_steps():
    with pytest.raises(InvalidInput) as caught:
        StylePriorTrainOptions(encoder="clip")
    assert caught.value.field == "clip_model"
    with pytest.raises(InvalidInput) as caught:
        StylePriorTrainOptions(steps=0)
    assert caught.value.field == "steps"
