"""`generate --style-prior RUN --image REF` and the generate-avatar job's image-guided path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.errors import InvalidInput
from backend.jobs.registry import JobContext, get_kind
from backend.model_cache import ModelCache
from backend.progress import SilentProgress

TINY_MESH = ["--mesh-resolution", "24", "--mesh-level", "1.5", "--texture-size", "32", "--max-faces", "2000"]


@pytest.fixture
def reference(tmp_path):
    """A cut-out character with an alpha channel, taller than wide (centre-cropped on use)."""
    array = np.zeros((48, 40, 4), np.uint8)
    array[..., 0], array[..., 2] = 220, 90
    array[6:42, 4:36, 3] = 255
    path = tmp_path / "concept.png"
    Image.fromarray(array, "RGBA").save(path)
    return path


def test_generate_with_a_reference_image_writes_the_usual_outputs_plus_the_predicted_w(
        style_prior_generator_dir, trained_style_prior, reference, tmp_path, capsys):
    out = tmp_path / "avatar"
    code = main(["generate", "--checkpoint", str(style_prior_generator_dir), "--style-prior", str(trained_style_prior),
                 "--image", str(reference), "--seed", "4", "--guidance-scale", "2", "--prior-steps", "8", "--out", str(out), *TINY_MESH])
    assert code == 0, capsys.readouterr().err
    assert (out / "avatar.glb").stat().st_size > 0 and len(list((out / "previews").glob("*.png"))) == 6
    avatar = json.loads((out / "avatar.json").read_text())
    predicted = np.load(out / "predicted_w.npy")
    assert predicted.shape == (32,)
    assert np.allclose(np.asarray(avatar["w"]), predicted[None].repeat(len(avatar["w"]), 0)), "the predicted w drives every layer"
    record = json.loads((out / "style_prior.json").read_text())
    assert (record["image"], record["seed"], record["guidance_scale"], record["steps"]) == ("concept.png", 4, 2.0, 8)
    assert avatar["seed"] is None and avatar["image_guidance"]["seed"] == 4  # the style's seed is the prior's
    assert Image.open(out / "reference.png").size == (32, 32)


def test_generate_refuses_an_image_without_a_prior_and_a_non_image_reference(style_prior_generator_dir, trained_style_prior, tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(style_prior_generator_dir), "--image", str(tmp_path / "x.png"),
                 "--out", str(tmp_path / "a"), "--no-mesh"]) == 2
    assert "--style-prior" in capsys.readouterr().err
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert main(["generate", "--checkpoint", str(style_prior_generator_dir), "--style-prior", str(trained_style_prior),
                 "--image", str(text), "--out", str(tmp_path / "b"), "--no-mesh"]) == 2
    assert "not an image" in capsys.readouterr().err
    assert not (tmp_path / "b").exists(), "nothing is written for a refused reference"


def _context(tmp_path, inputs_dir, references):
    output = tmp_path / "output"
    output.mkdir()
    return JobContext(job_id="j1", output_dir=output, inputs_dir=inputs_dir, progress=SilentProgress(), models=ModelCache(),
                      resolve=lambda reference: references[reference])


def test_generate_avatar_job_uses_the_uploaded_reference_image(style_prior_generator_dir, trained_style_prior, reference, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    reference.rename(inputs / "reference.png")
    kind = get_kind("generate-avatar")
    assert kind.accepts_upload
    params = kind.params(checkpoint="job:gan", style_prior="job:prior", prior_steps=6, export_mesh=False, preview_yaws=[0.0])
    context = _context(tmp_path, inputs, {"job:gan": style_prior_generator_dir, "job:prior": trained_style_prior})
    kind.run(params, context)
    record = json.loads((context.output_dir / "style_prior.json").read_text())
    assert record["style_prior"] == "job:prior" and record["image"] == "reference.png"
    avatar = json.loads((context.output_dir / "avatar.json").read_text())
    assert avatar["seed"] is None and np.allclose(avatar["w"][0], np.load(context.output_dir / "predicted_w.npy"))


@pytest.mark.parametrize("inputs, name, field", [(None, "reference.png", "bundle"), ("empty", "../secret.png", "reference_image"),
                                                 ("empty", "missing.png", "reference_image")])
def test_generate_avatar_job_refuses_a_missing_or_escaping_reference(style_prior_generator_dir, trained_style_prior, tmp_path, inputs, name, field):
    inputs_dir = None
    if inputs:
        inputs_dir = tmp_path / inputs
        inputs_dir.mkdir()
    kind = get_kind("generate-avatar")
    params = kind.params(checkpoint="job:gan", style_prior="job:prior", reference_image=name, export_mesh=False)
    context = _context(tmp_path, inputs_dir, {"job:gan": style_prior_generator_dir, "job:prior": trained_style_prior})
    with pytest.raises(InvalidInput) as caught:
        kind.run(params, context)
    assert caught.value.field == field
    assert list(context.output_dir.iterdir()) == []


def test_train_style_prior_job_writes_a_prior_named_by_its_generator_reference(style_prior_generator_dir, tmp_path):
    kind = get_kind("train-style-prior")
    params = kind.params(generator="job:gan", config="tiny", steps=2, batch_size=4)
    context = _context(tmp_path, None, {"job:gan": style_prior_generator_dir})
    kind.run(params, context)
    config = json.loads((context.output_dir / "config.json").read_text())
    assert config["kind"] == "style-prior" and config["extra"]["generator"] == "job:gan" and config["extra"]["steps"] == 2
    assert json.loads((context.output_dir / "metrics.json").read_text())["steps"] == 2
