"""EG3D as its paper and released training have it, where our first version diverged: no noise in the
super-resolution (3D consistency across views), density smoothing over [-1, 1]³, the discriminator's
label embedded before it is normalized, only the super-resolved image blurred, lazy regularization's
Adam correction, and painted images matted onto the background the generator renders on (without it,
real painted data trains a foggy head)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from backend.models.eg3d.discriminator import DiscriminatorConfig, DualDiscriminator
from backend.models.eg3d.generator import TriplaneGenerator, tiny_generator_config
from backend.models.eg3d.layers import EqualizedLinear
from backend.models.eg3d.triplane import sample_triplanes
from backend.multiview.matting import matte_image
from blender_addon.formats.cameras import orbit_label
from training.eg3d.config import tiny_config
from training.eg3d.losses import density_regularization
from training.eg3d.trainer import Eg3dTrainer

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_the_super_resolution_adds_no_noise_of_its_own():
    """Two renders of the same features give the same super-resolved image: per-call noise there would
    differ from view to view (EG3D renders its super-resolution without noise)."""
    torch.manual_seed(0)
    generator = TriplaneGenerator(tiny_generator_config()).train()
    captured = {}
    generator.superresolution.register_forward_hook(lambda module, args, output: captured.update(args=args, output=output))
    ws = generator.mapping(torch.randn(2, generator.z_dim))
    generator.synthesis(ws, torch.tensor([orbit_label(0, 0), orbit_label(40, 10)]), noise_mode="random")
    again = generator.superresolution(*captured["args"][:3], generator.config.superresolution_noise_mode)
    assert torch.equal(again, captured["output"])


def test_planes_and_points_of_different_batches_are_refused():
    """One avatar's planes sampled at two avatars' points used to pair them silently (wrong features)."""
    with pytest.raises(ValueError, match="one point set per avatar"):
        sample_triplanes(torch.zeros(1, 3, 4, 8, 8), torch.zeros(2, 5, 3), box_warp=1.0)


def test_density_regularization_samples_the_cube_around_the_box():
    """Points cover [-1, 1]³, about one in eight inside the unit box, as EG3D samples them."""
    generator = TriplaneGenerator(tiny_generator_config())
    seen = []
    query = generator.query
    generator.query = lambda planes, points: (seen.append(points), query(planes, points))[1]
    density_regularization(generator, generator.mapping(torch.randn(2, generator.z_dim)), 2000, 0.004, torch.Generator().manual_seed(1))
    points = seen[0][:, :2000]
    inside = (points.abs() <= 0.5).all(dim=-1).float().mean().item()
    assert points.abs().max() > 0.95 and 0.09 < inside < 0.16


def test_the_discriminator_embeds_its_label_then_maps_it_with_eight_slow_layers():
    """EG3D's conditioning: embedding, normalization of the embedding, 8 layers at learning rate x0.01."""
    discriminator = DualDiscriminator(DiscriminatorConfig(resolution=32, label_dim=34, channel_base=256, channel_max=16, cmap_dim=16))
    mapping = discriminator.label_mapping
    slow = [layer for layer in mapping.layers if isinstance(layer, EqualizedLinear)]
    assert isinstance(mapping.embed, EqualizedLinear) and len(slow) == 8
    assert all(layer.bias_gain == pytest.approx(0.01) for layer in slow)
    labels = torch.randn(4, 34)
    assert torch.isfinite(discriminator(torch.randn(4, 3, 32, 32), torch.randn(4, 3, 16, 16), labels)).all()


def test_only_the_super_resolved_image_is_blurred_and_lazy_regularization_corrects_adam(sphere_dataset, tmp_path):
    """D sees the raw rendering as it is (it is low resolution already); the regularized networks' Adam
    steps are scaled by interval/(interval+1) as StyleGAN2 and EG3D train them."""
    config = replace(tiny_config(), blur_sigma=2.0, blur_fade_images=1000)
    trainer = Eg3dTrainer(sphere_dataset, tmp_path, config)
    image, raw = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 16, 16)
    blurred, raw_seen = trainer._blurred(image, raw)
    assert torch.equal(raw_seen, raw) and not torch.allclose(blurred, image)
    ratio = config.r1_interval / (config.r1_interval + 1)
    group = trainer.opt_D.param_groups[0]
    assert group["lr"] == pytest.approx(config.d_lr * ratio)
    assert group["betas"][1] == pytest.approx(config.betas[1] ** ratio)
    g_ratio = config.density_reg_interval / (config.density_reg_interval + 1)
    assert trainer.opt_G.param_groups[0]["lr"] == pytest.approx(config.g_lr * g_ratio)


def test_matting_puts_the_painted_head_on_the_generators_background():
    """Outside the (grown, feathered) head mask the painted scenery becomes the flat colour; the head
    keeps its pixels; 'keep' leaves the painting as it was."""
    pixels = np.zeros((64, 64, 3), dtype=np.float32)
    pixels[...] = (0.2, 0.6, 0.3)  # a painted backdrop
    yy, xx = np.mgrid[:64, :64]
    mask = ((yy - 32) ** 2 + (xx - 32) ** 2) < 15 ** 2
    pixels[mask] = (0.9, 0.7, 0.5)
    white = matte_image(pixels, mask.astype(np.float32), "white")
    black = matte_image(pixels, mask.astype(np.float32), "black")
    assert np.allclose(white[0, 0], 1.0) and np.allclose(black[63, 63], 0.0)
    assert np.allclose(white[32, 32], (0.9, 0.7, 0.5), atol=1e-3) and np.allclose(black[mask], pixels[mask], atol=1e-3)
    assert np.array_equal(matte_image(pixels, mask, "keep"), pixels)


def test_painted_datasets_are_matted_and_the_generator_renders_on_their_background(painted_dataset, sphere_dataset, tmp_path):
    """The multiview stage declares the colour it matted onto and its corners hold it; a GAN trained on
    a white-matted dataset renders on white."""
    out, dataset = painted_dataset
    assert dataset.background == "black"
    for item in dataset.items:
        with Image.open(out / item.file) as image:
            corners = np.asarray(image)[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert (corners == 0).all()
    white = tmp_path / "white"
    shutil.copytree(sphere_dataset, white)
    manifest = json.loads((white / "dataset.json").read_text())
    (white / "dataset.json").write_text(json.dumps({**manifest, "background": "white"}))
    assert Eg3dTrainer(white, tmp_path / "run", tiny_config()).config.generator.white_background is True
    assert Eg3dTrainer(sphere_dataset, tmp_path / "run-keep", tiny_config()).config.generator.white_background is False


@pytest.fixture(scope="module")
def painted_dataset(tiny_models, tmp_path_factory):
    from tests.test_multiview_generation import settings_for, write_bundle
    from backend.multiview.generation import generate_multiview

    root = tmp_path_factory.mktemp("matted")
    dataset = generate_multiview(write_bundle(root / "bundle", yaws=(0.0, 90.0)), root / "out", settings_for(tiny_models),
                                 tiny_models.store.resolve)
    return root / "out", dataset
