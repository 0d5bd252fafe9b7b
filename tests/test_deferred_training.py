"""Training, resuming, baking and evaluating the deferred renderer on a tiny synthetic deferred dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from backend.cli import main
from backend.errors import Cancelled
from backend.formats.checkpoint import load_train_state
from backend.models.deferred.channels import ChannelLayout
from backend.models.deferred.checkpoint import build_renderer, load_renderer
from backend.models.store import ModelStore
from backend.progress import SilentProgress
from blender_addon.formats.condition_bundle import read_bundle
from tests.fixtures.deferred import write_sphere_dataset
from training.deferred.dataset import DeferredDataset, HoldOut
from training.deferred.evaluation import image_metrics
from training.deferred.trainer import DeferredTrainOptions, renderer_config, train_deferred


def tiny_options(base: str, **changes) -> DeferredTrainOptions:
    settings = dict(base=base, resolution=16, steps=2, batch_size=2, checkpoint_every=100, validate_every=100,
                    validation_renders=1, channels=ChannelLayout(triplane_channels=2), triplane_resolution=16,
                    num_inference_steps=2, hold_out=HoldOut(views=("cam2",)))
    settings.update(changes)
    return DeferredTrainOptions(**settings)


def fixed_loss(renderer, dataset: DeferredDataset) -> float:
    """The training loss on every render with fixed noise and timesteps: comparable across weights."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        losses = [renderer.training_loss(*dataset.full(index), generator=generator).item() for index in range(len(dataset))]
    return float(np.mean(losses))


def test_training_a_few_dozen_steps_lowers_the_loss(tiny_models, deferred_dataset, tmp_path):
    options = tiny_options(tiny_models.names["base"], steps=24, learning_rate_networks=2e-3, hold_out=HoldOut())
    names = read_bundle(deferred_dataset).expression_names
    untrained = build_renderer(renderer_config(options, names, tiny_models.store), tiny_models.store)
    dataset = DeferredDataset(deferred_dataset, untrained.config.expression_names)
    before = fixed_loss(untrained, dataset)

    result = train_deferred(deferred_dataset, tmp_path / "run", options, tiny_models.store, SilentProgress())

    after = fixed_loss(load_renderer(tmp_path / "run", tiny_models.store), dataset)
    assert result.steps == 24 and len(result.losses) == 24
    assert after < before * 0.95, (before, after)
    assert (tmp_path / "run" / "validation" / "step_000024.png").is_file()


def test_a_cancelled_run_snapshots_and_resumes_where_it_stopped(tiny_models, deferred_dataset, tmp_path):
    class CancelAfterFirstStep(SilentProgress):
        def update(self, fraction: float, stage: str) -> None:
            super().update(fraction, stage)
            if stage.startswith("training step 1/"):
                raise Cancelled()

    options = tiny_options(tiny_models.names["base"], steps=2)
    with pytest.raises(Cancelled):
        train_deferred(deferred_dataset, tmp_path / "run", options, tiny_models.store, CancelAfterFirstStep())
    assert load_train_state(tmp_path / "run")["step"] == 1

    result = train_deferred(deferred_dataset, tmp_path / "run", options, tiny_models.store, SilentProgress())
    assert result.steps == 2 and len(result.losses) == 2
    assert load_train_state(tmp_path / "run")["step"] == 2


def test_cli_trains_bakes_an_animation_and_evaluates_held_out_views(tiny_models, deferred_dataset, tmp_path, capsys):
    data_dir = tmp_path / "data"
    ModelStore(data_dir / "models").add(tiny_models.paths.base, "tiny-sd", "base")
    run = tmp_path / "run"
    common = ["--data-dir", str(data_dir)]
    assert main(["train", "deferred", "--data", str(deferred_dataset), "--out", str(run), "--base", "tiny-sd",
                 "--steps", "1", "--batch-size", "1", "--resolution", "16", "--triplane-resolution", "16",
                 "--triplane-channels", "2", "--steps-inference", "2", "--holdout-views", "cam2", *common]) == 0
    assert (run / "config.json").is_file() and (run / "validation" / "step_000001.png").is_file()

    animation = write_sphere_dataset(tmp_path / "animation", size=16, yaws=(0.0, 20.0), jaw_values=(0.0, 0.3, 0.6, 0.9), with_target=False)
    frames_dir = tmp_path / "frames"
    assert main(["animate", "--checkpoint", str(run), "--conditions", str(animation), "--out", str(frames_dir),
                 "--batch-size", "3", "--fps", "30", *common]) == 0
    manifest = json.loads((frames_dir / "frames.json").read_text())
    assert manifest["fps"] == 30.0 and (manifest["width"], manifest["height"]) == (16, 16)
    assert len(manifest["frames"]) == 2 * 4
    assert {(item["view"], item["frame"]) for item in manifest["frames"]} == {(v, f) for v in ("cam0", "cam1") for f in range(4)}
    for item in manifest["frames"]:
        with Image.open(frames_dir / item["file"]) as image:
            assert image.size == (16, 16) and image.mode == "RGB"
    assert not (frames_dir / "frames.progress.json").exists()

    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(deferred_dataset), *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["split"] == "held-out" and summary["renders"] == 3, "only the held-out view cam2, three frames"
    for key in ("psnr", "ssim", "psnr_masked", "ssim_masked"):
        assert isinstance(summary[key], float)


def test_metrics_reward_identical_images_and_masked_variants_ignore_the_background():
    rng = np.random.default_rng(0)
    target = rng.random((32, 32, 3))
    mask = np.zeros((32, 32))
    mask[8:24, 8:24] = 1.0
    background_off = target.copy()
    background_off[mask < 0.5] = 1.0 - background_off[mask < 0.5]
    same = image_metrics(target, target, mask)
    off = image_metrics(background_off, target, mask)
    assert same["psnr"] == 100.0 and same["ssim"] == pytest.approx(1.0)
    assert off["psnr"] < 20.0 and off["psnr_masked"] == 100.0
    assert off["ssim"] < 0.9 and off["ssim_masked"] > off["ssim"]
