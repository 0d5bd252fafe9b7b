"""Without Stable Diffusion weights an artist trains the 3D GAN on Cycles renders of their own characters:
``gan-dataset`` turns bundles rendered with the character as target into an EG3D dataset whose images are
the character matted on black, each with its camera's label, and refuses bundles without the character."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.formats.multiview_dataset import read_dataset
from blender_addon.formats.condition_bundle import read_bundle

pytest.importorskip("bpy")


def render(folder, *extra: str) -> None:
    assert main(["render-conditions", "--demo-rig", "--views", "3", "--res", "48", "--out", str(folder), *extra]) == 0


@pytest.mark.slow
def test_renders_of_a_character_become_a_gan_dataset_on_black_with_their_cameras(tmp_path, capsys):
    bundle = tmp_path / "character"
    render(bundle, "--target-object", "DemoHead_mesh")
    out = tmp_path / "dataset"
    assert main(["gan-dataset", str(bundle), "--out", str(out), "--resolution", "32"]) == 0
    assert "train eg3d --data" in capsys.readouterr().out
    dataset = read_dataset(out)
    views = {view.id: view.label for view in read_bundle(bundle).views}
    assert dataset.background == "black" and dataset.resolution == 32 and len(dataset.items) == 3
    assert np.allclose(sorted(item.label for item in dataset.items), sorted(views.values()), atol=1e-6)
    for item in dataset.items:
        pixels = np.asarray(Image.open(out / item.file).convert("RGB")).astype(float)
        assert pixels.shape == (32, 32, 3)
        assert pixels[0, 0].max() == 0 and pixels[-1, -1].max() == 0, "the corners are the black background"
        head = pixels.max(-1) > 20
        assert 0.1 < head.mean() < 0.9, "the character fills part of the frame"


@pytest.mark.slow
def test_a_bundle_without_the_character_is_refused_with_the_way_to_render_it(tmp_path, capsys):
    bundle = tmp_path / "rig-only"
    render(bundle)
    assert main(["gan-dataset", str(bundle), "--out", str(tmp_path / "dataset")]) == 2
    error = capsys.readouterr().err
    assert "no target pass" in error and "--target-object" in error
    assert not (tmp_path / "dataset" / "dataset.json").exists()
