"""The deferred renderer without a prior (a UNet trained from scratch in pixel space): no base model anywhere,
a checkpoint that holds every weight, the CLI and the jobs, and a fit that beats the per-view mean image."""

from __future__ import annotations

import json

import pytest
import torch

from backend.cli import main
from backend.errors import InvalidInput
from backend.formats.checkpoint import load_weights
from backend.models.deferred.channels import ChannelLayout
from backend.models.deferred.checkpoint import build_renderer, load_renderer, save_renderer
from backend.models.deferred.conditions import ConditionTensors
from backend.models.deferred.renderer import DeferredRendererConfig
from backend.models.deferred.scratch_unet import ScratchUNetConfig
from backend.progress import SilentProgress
from tests.fixtures.deferred import EXPRESSION_NAMES, write_sphere_dataset
from tests.fixtures.server import start_backend, submit_bundle_job, wait_for_job, zip_folder
from training.deferred.dataset import DeferredDataset, HoldOut
from training.deferred.evaluation import evaluate_renderer
from training.deferred.trainer import DeferredTrainOptions, train_deferred

TINY_UNET = ScratchUNetConfig(block_out_channels=(16, 32), cross_attention_dim=16, condition_embedding_channels=16)


def tiny_config(**changes) -> DeferredRendererConfig:
    settings = dict(expression_names=tuple(EXPRESSION_NAMES), prior="none", scratch_unet=TINY_UNET,
                    channels=ChannelLayout(triplane_channels=2), triplane_resolution=16, num_inference_steps=3)
    return DeferredRendererConfig(**{**settings, **changes})


def tiny_options(**changes) -> DeferredTrainOptions:
    settings = dict(prior="none", scratch_unet=TINY_UNET, resolution=16, steps=2, batch_size=2, checkpoint_every=100,
                    validate_every=100, validation_renders=1, channels=ChannelLayout(triplane_channels=2),
                    triplane_resolution=16, num_inference_steps=2, hold_out=HoldOut(views=("cam2",)))
    return DeferredTrainOptions(**{**settings, **changes})


@pytest.mark.parametrize("mode", ["diffusion", "direct"])
def test_a_saved_renderer_without_prior_loads_back_exactly_with_no_model_store(deferred_dataset, tmp_path, mode):
    renderer = build_renderer(tiny_config(mode=mode), None)
    with torch.no_grad():
        for parameter in renderer.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))  # not the seeded initialisation
    save_renderer(tmp_path / "run", renderer)

    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert saved["prior"] == "none" and saved["base"] == ""
    assert saved["scratch_unet"]["block_out_channels"] == [16, 32]
    weights = load_weights(tmp_path / "run")
    assert set(weights) == set(renderer.state_dict()), "every weight is in model.safetensors"
    assert any(name.startswith("unet.") for name in weights) and any(name.startswith("condition_embedding.") for name in weights)

    loaded = load_renderer(tmp_path / "run", None)
    assert loaded.config == renderer.config
    assert all(torch.equal(loaded.state_dict()[name], tensor) for name, tensor in renderer.state_dict().items())
    conditions, _ = DeferredDataset(deferred_dataset, tuple(EXPRESSION_NAMES)).full(0)
    assert torch.equal(loaded.render(conditions), renderer.eval().render(conditions))


def test_the_from_scratch_unet_attends_to_the_expression_tokens(deferred_dataset):
    renderer = build_renderer(tiny_config(mode="direct"), None).eval()
    conditions, _ = DeferredDataset(deferred_dataset, tuple(EXPRESSION_NAMES)).full(0)
    other = ConditionTensors(conditions.depth, conditions.canonical, conditions.normal, conditions.mask,
                             conditions.expression + 1.0)
    assert renderer.unet.config.cross_attention_dim == renderer.expression_encoder.width == TINY_UNET.cross_attention_dim
    assert not torch.allclose(renderer.render(conditions), renderer.render(other))


def test_with_the_expression_in_the_time_embedding_it_reaches_the_blocks_without_attention(deferred_dataset, tmp_path):
    """Cross-attention only sits at the coarse levels; this option lets the code shift every residual block."""
    conditions, _ = DeferredDataset(deferred_dataset, tuple(EXPRESSION_NAMES)).full(0)
    other = ConditionTensors(conditions.depth, conditions.canonical, conditions.normal, conditions.mask,
                             conditions.expression + 1.0)
    changes = {}
    for in_time_embedding in (False, True):
        architecture = ScratchUNetConfig(block_out_channels=(16, 32), cross_attention_dim=16, condition_embedding_channels=16,
                                         expression_in_time_embedding=in_time_embedding)
        renderer = build_renderer(tiny_config(mode="direct", scratch_unet=architecture), None).eval()
        with torch.no_grad():
            for name, parameter in renderer.unet.named_parameters():
                if ".attn2.to_out." in name:
                    parameter.zero_()  # no expression through attention
        changes[in_time_embedding] = (renderer.render(conditions) - renderer.render(other)).abs().max().item()
        save_renderer(tmp_path / str(in_time_embedding), renderer)
        assert torch.equal(load_renderer(tmp_path / str(in_time_embedding), None).render(other), renderer.render(other))
    assert changes[False] == 0.0 and changes[True] > 1e-3, changes


def test_priors_and_base_models_go_together():
    with pytest.raises(InvalidInput, match="uses no base model"):
        DeferredTrainOptions(prior="none", base="tiny-sd")
    with pytest.raises(InvalidInput, match="needs a base model"):
        DeferredTrainOptions(prior="latent-diffusion")
    with pytest.raises(ValueError, match="needs a scratch_unet"):
        DeferredRendererConfig(expression_names=("a",), prior="none")


def test_direct_mode_from_scratch_beats_the_per_view_mean_image_on_held_out_expressions(tmp_path):
    """On a fixed seed: the sphere's mouth band moves with the first expression value only (the geometry does not),
    and two of eight expressions are never trained on."""
    torch.manual_seed(0)
    data = write_sphere_dataset(tmp_path / "data", size=32, yaws=(-25.0, 0.0, 25.0),
                                jaw_values=(0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0))
    hold_out = HoldOut(frame_stride=4)
    options = tiny_options(mode="direct", resolution=32, steps=150, batch_size=6, crop_min=1.0, learning_rate_schedule="cosine",
                           warmup_steps=10, triplane_resolution=32, hold_out=hold_out)
    train_deferred(data, tmp_path / "run", options, None, SilentProgress())

    summary = evaluate_renderer(load_renderer(tmp_path / "run", None), data, {"views": [], "frame_stride": 4}, SilentProgress())
    assert summary["renders"] == 3 * 2
    assert summary["psnr_masked"] > summary["per_view_mean_image"]["psnr_masked"] + 1.0, summary


def test_cli_trains_without_a_base_then_animates_and_evaluates(deferred_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data-dir", str(tmp_path / "empty-store")]
    assert main(["train", "deferred", "--prior", "none", "--scratch-widths", "16", "32", "--data", str(deferred_dataset),
                 "--out", str(run), "--steps", "2", "--batch-size", "1", "--resolution", "16", "--triplane-resolution", "16",
                 "--triplane-channels", "2", "--steps-inference", "2", "--lr-schedule", "cosine", "--holdout-views", "cam2",
                 "--expression-in-time-embedding", *common]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["prior"] == "none" and config["scratch_unet"]["block_out_channels"] == [16, 32]
    assert config["scratch_unet"]["expression_in_time_embedding"] is True

    animation = write_sphere_dataset(tmp_path / "animation", size=16, yaws=(0.0,), jaw_values=(0.0, 0.5), with_target=False)
    assert main(["animate", "--checkpoint", str(run), "--conditions", str(animation), "--out", str(tmp_path / "frames"), *common]) == 0
    assert len(json.loads((tmp_path / "frames" / "frames.json").read_text())["frames"]) == 2

    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(deferred_dataset), *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["renders"] == 3 and isinstance(summary["per_view_mean_image"]["psnr_masked"], float)

    assert main(["train", "deferred", "--prior", "none", "--base", "tiny-sd", "--data", str(deferred_dataset),
                 "--out", str(tmp_path / "other"), *common]) != 0


def test_train_deferred_job_without_prior_needs_no_base_model_and_feeds_an_animate_job(deferred_dataset, tmp_path):
    backend = start_backend(tmp_path / "data")
    try:
        with backend.client() as client:
            response = submit_bundle_job(client, zip_folder(deferred_dataset), kind="train-deferred", params={
                "prior": "none", "scratch_widths": [16, 32], "steps": 1, "batch_size": 1, "resolution": 16,
                "triplane_resolution": 16, "triplane_channels": 2, "steps_inference": 2, "holdout_views": ["cam2"],
                "expression_in_time_embedding": True})
            assert response.status_code == 201, response.text
            trained = wait_for_job(client, response.json()["id"], timeout=600.0)
            assert trained["state"] == "succeeded", trained["error"]
            config = client.get(f"/v1/jobs/{trained['id']}/artifacts/config.json").json()["config"]
            assert config["scratch_unet"]["expression_in_time_embedding"] is True

            animation = write_sphere_dataset(tmp_path / "animation", size=16, yaws=(10.0,), jaw_values=(0.0, 1.0), with_target=False)
            response = submit_bundle_job(client, zip_folder(animation), kind="animate", params={"checkpoint": f"job:{trained['id']}"})
            animated = wait_for_job(client, response.json()["id"], timeout=600.0)
            assert animated["state"] == "succeeded", animated["error"]
            manifest = client.get(f"/v1/jobs/{animated['id']}/artifacts/frames.json").json()
            assert [item["frame"] for item in manifest["frames"]] == [0, 1]
    finally:
        backend.stop()
