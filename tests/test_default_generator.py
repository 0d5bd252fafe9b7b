"""The embedded default generator (backend/default_models/eg3d): it loads with the exact loader, draws
heads rather than noise, ships inside the wheel, and is what generate uses when no generator is given."""

from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from backend.cli import main
from backend.default_models import DEFAULT_GENERATOR, DEFAULT_GENERATOR_NAME, DEFAULT_GENERATOR_NOTICE, DEFAULT_MODELS, DEFAULT_RENDERER
from backend.jobs.registry import JobContext, get_kind
from backend.model_cache import ModelCache
from backend.models.eg3d.generator import TriplaneGenerator, load_generator
from backend.progress import SilentProgress
from blender_addon.formats.cameras import orbit_label
from blender_addon.formats.notices import read_notices

REPOSITORY = Path(__file__).resolve().parents[1]
SEEDS = 4


@pytest.fixture(scope="module")
def generator():
    return load_generator(DEFAULT_GENERATOR)


def front_views(generator) -> np.ndarray:
    """Front renders [SEEDS, H, W, 3] in [0, 1] of seeds 0.. at the default truncation."""
    with torch.no_grad():
        z = torch.stack([torch.randn(generator.z_dim, generator=torch.Generator().manual_seed(seed)) for seed in range(SEEDS)])
        ws = generator.mapping(z, truncation_psi=0.7)
        camera = torch.tensor([orbit_label(0.0, 0.0)] * SEEDS, dtype=torch.float32)
        images = generator.synthesis(ws, camera, jitter=False)["image"]
    return ((images.permute(0, 2, 3, 1).numpy() + 1) / 2).clip(0, 1)


def head_mask(image: np.ndarray) -> np.ndarray | None:
    """The largest bright region of a render on black when it is one centred head-sized object, else None."""
    foreground = image.max(-1) > 0.15  # the generator renders on black
    labels, count = ndimage.label(foreground)
    if count == 0:
        return None
    head = labels == 1 + np.argmax(ndimage.sum(foreground, labels, range(1, count + 1)))
    centre = np.argwhere(head).mean(0) / image.shape[0]
    sane = (0.12 < head.mean() < 0.7 and head.sum() > 0.9 * foreground.sum() and np.all(np.abs(centre - 0.5) < 0.15)
            and not head[0].any() and not head[-1].any())
    return head if sane else None


def interior_roughness(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Mean absolute Laplacian of the grey image inside the (eroded) head, and the same with the head's pixels
    shuffled (what noise of the same colours would give)."""
    grey = image.mean(-1)
    inside = ndimage.binary_erosion(mask, iterations=2)
    shuffled = grey.copy()
    shuffled[mask] = rng.permutation(grey[mask])
    return float(np.abs(ndimage.laplace(grey))[inside].mean()), float(np.abs(ndimage.laplace(shuffled))[inside].mean())


def test_the_embedded_default_loads_strictly_and_has_its_card():
    weights = DEFAULT_GENERATOR / "model.safetensors"
    assert weights.stat().st_size < 8 * 1024 * 1024, "the embedded default must stay a few MB"
    generator = load_generator(DEFAULT_GENERATOR)  # load_state_dict is strict: every tensor, every shape
    card = (DEFAULT_GENERATOR / "MODEL_CARD.md").read_text()
    report = json.loads((DEFAULT_GENERATOR / "training_report.json").read_text())
    assert report["parameters"] == sum(p.numel() for p in generator.parameters())
    assert f"{report['training']['images_seen']:,} images seen" in card and "Chamfer" in card


def test_the_default_draws_centred_heads_not_noise(generator):
    rng = np.random.default_rng(0)
    for image in front_views(generator):
        mask = head_mask(image)
        assert mask is not None, "one centred, head-sized object on black that does not touch the top or bottom"
        smooth, noise = interior_roughness(image, mask, rng)
        assert smooth < 0.5 * noise, "the head's surface is smooth, not noise"
    torch.manual_seed(0)
    untrained = TriplaneGenerator(generator.config).eval()
    assert all(head_mask(image) is None for image in front_views(untrained)), "the check tells an untrained generator apart"


def test_generate_without_a_checkpoint_uses_the_default_and_says_so(tmp_path, capsys):
    out = tmp_path / "avatar"
    assert main(["generate", "--seed", "2", "--out", str(out), "--no-mesh"]) == 0
    assert DEFAULT_GENERATOR_NOTICE in capsys.readouterr().out
    assert read_notices(out) == [DEFAULT_GENERATOR_NOTICE]
    assert json.loads((out / "avatar.json").read_text())["checkpoint"] == str(DEFAULT_GENERATOR)


def test_the_generate_job_without_a_checkpoint_uses_the_default(tmp_path):
    def refuse(reference: str) -> Path:
        raise AssertionError(f"nothing should be resolved, got {reference!r}")

    kind = get_kind("generate-avatar")
    context = JobContext("job", tmp_path, None, SilentProgress(), ModelCache(), refuse, "cpu")
    kind.run(kind.params(seed=1, preview_yaws=[0.0], export_mesh=False), context)
    assert json.loads((tmp_path / "avatar.json").read_text())["checkpoint"] == DEFAULT_GENERATOR_NAME
    assert read_notices(tmp_path) == [DEFAULT_GENERATOR_NOTICE]
    assert (tmp_path / "previews" / "yaw_+000.png").is_file()


def test_the_wheel_carries_every_embedded_default():
    """pyproject's package data covers every file of every default, generator and renderer (the add-on's
    backend wheel is that wheel)."""
    patterns = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["backend"]
    package = REPOSITORY / "backend"
    assert {DEFAULT_GENERATOR, DEFAULT_RENDERER} <= set(DEFAULT_MODELS.iterdir())
    for path in [path for folder in (DEFAULT_GENERATOR, DEFAULT_RENDERER) for path in folder.iterdir()]:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), f"{relative} is not package data"
