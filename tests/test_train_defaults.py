"""``python build.py train-defaults`` at its smallest size: varied heads rendered by Cycles, an EG3D dataset,
a trained generator written with its card and report; the demo head over random expressions and a small
deferred renderer trained and scored on it; and a second call that resumes instead of redoing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.formats.multiview_dataset import read_dataset
from backend.models.deferred.checkpoint import load_renderer
from backend.models.eg3d.generator import load_generator
from training.defaults import DEFAULT_BUILDERS, build_defaults
from training.defaults import deferred_default
from training.defaults.eg3d_default import CARD_NAME, QUICK, REPORT_NAME
from training.synthetic_heads import TRUE_HEAD_FILE, TrueHead, head_bundle


@pytest.mark.slow
def test_quick_defaults_render_varied_heads_train_and_write_a_loadable_generator_with_its_card(tmp_path):
    assert [builder.name for builder in DEFAULT_BUILDERS] == ["eg3d", "deferred"]
    work, out = tmp_path / "work", tmp_path / "out"
    messages: list[str] = []
    report = build_defaults(work, ["eg3d"], out_root=out, quick=True, progress=messages.append)["eg3d"]

    heads = work / "eg3d" / "heads"
    dataset = read_dataset(heads / "dataset")
    assert len(dataset.items) == QUICK.heads.heads * QUICK.heads.views_per_head and dataset.background == "black"
    average, varied = (TrueHead.load(head_bundle(heads, index) / TRUE_HEAD_FILE) for index in (0, 1))
    assert np.ptp(average.vertices, 0) != pytest.approx(np.ptp(varied.vertices, 0), rel=1e-3)  # another head shape

    generator = load_generator(out / "eg3d")
    assert report["parameters"] == sum(p.numel() for p in generator.parameters())
    assert report["training"]["images_seen"] >= QUICK.total_images
    assert json.loads((out / "eg3d" / REPORT_NAME).read_text()) == report
    card = (out / "eg3d" / CARD_NAME).read_text()
    assert f"{report['training']['images_seen']:,} images seen" in card and "box ellipsoid" in card
    for scores in (report["mean_avatar_vs_average_head"], report["baseline_box_ellipsoid"]):
        assert 0 < scores["chamfer_fraction"] < 1 and 0 <= scores["occupancy_iou"] <= 1

    again = build_defaults(work, ["eg3d"], out_root=out, quick=True, progress=messages.append)["eg3d"]
    assert again["training"]["images_this_call"] == 0 and again["training"]["images_seen"] == report["training"]["images_seen"]
    assert any("rendered 2 heads" in message for message in messages)


@pytest.mark.slow
def test_quick_default_renderer_trains_on_the_demo_head_over_expressions_and_scores_held_out_renders(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    report = build_defaults(work, ["deferred"], out_root=out, quick=True)["deferred"]
    settings = deferred_default.QUICK
    renderer = load_renderer(out / "deferred", None)  # the shipped folder needs no base model
    assert renderer.config.prior == "none" and report["parameters"] == sum(p.numel() for p in renderer.parameters())
    assert report["training"]["steps"] == settings.steps and report["data"]["renders"] == settings.data.views * settings.data.expressions
    held_out = report["held_out"]
    assert held_out["renders"] > 0 and all(np.isfinite(held_out[model]["psnr"]) for model in ("renderer", "per_view_mean_image"))
    card = (out / "deferred" / deferred_default.CARD_NAME).read_text()
    assert f"{held_out['renderer']['psnr_masked']:.2f} dB" in card and "per-view mean image" in card
    assert (out / "deferred" / deferred_default.SAMPLES_NAME).stat().st_size > 0

    manifest = work / "deferred" / "data" / "full" / "conditions.json"
    rendered_at = manifest.stat().st_mtime_ns
    again = build_defaults(work, ["deferred"], out_root=out, quick=True)["deferred"]
    assert again["training"]["steps_this_call"] == 0 and manifest.stat().st_mtime_ns == rendered_at  # resumed, not redone
    assert again["data"]["render_seconds"] == report["data"]["render_seconds"] > 0  # the first call's time, still reported
    assert again["training"]["training_seconds"] == report["training"]["training_seconds"] > 0
    assert again["held_out"] == held_out
