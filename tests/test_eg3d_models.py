"""The EG3D networks: shapes, determinism, cameras, rendering maths, gradients, checkpoints, pose labels."""

from __future__ import annotations

import math

import pytest
import torch

from backend.formats.checkpoint import CONFIG_NAME
from backend.models.eg3d.discriminator import DualDiscriminator
from backend.models.eg3d.generator import TriplaneGenerator, load_generator, save_generator, tiny_generator_config
from backend.models.eg3d.pose_conditioning import PoseConditioningConfig, discriminator_labels, yaw_bin
from backend.models.eg3d.volume_renderer import RenderSettings, ray_box_bounds, rays_from_labels, render_rays
from blender_addon.formats.cameras import look_at_cam2world, make_label, orbit_label
from blender_addon.formats.errors import FormatError
from training.eg3d.config import discriminator_config, tiny_config

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def generator() -> TriplaneGenerator:
    torch.manual_seed(0)
    return TriplaneGenerator(tiny_generator_config()).eval()


def cameras(*yaws: float) -> torch.Tensor:
    return torch.tensor([orbit_label(yaw, 10.0) for yaw in yaws], dtype=torch.float32)


def test_generator_outputs_have_the_documented_shapes_and_ranges(generator):
    config = generator.config
    ws = generator.mapping(torch.randn(2, config.z_dim))
    assert ws.shape == (2, generator.num_ws, config.w_dim)
    out = generator.synthesis(ws, cameras(0, 120))
    assert out["image"].shape == (2, 3, config.output_resolution, config.output_resolution)
    assert out["image_raw"].shape == (2, 3, config.neural_rendering_resolution, config.neural_rendering_resolution)
    assert out["image_depth"].shape == (2, 1, config.neural_rendering_resolution, config.neural_rendering_resolution)
    assert out["image_raw"].min() >= -1.01 and out["image_raw"].max() <= 1.01
    # Depth lies inside the box seen from radius 2.7.
    assert out["image_depth"].min() >= 2.7 - math.sqrt(3) / 2 - 1e-4 and out["image_depth"].max() <= 2.7 + math.sqrt(3) / 2 + 1e-4


def test_the_full_config_has_eg3ds_size():
    """The default config is EG3D's FFHQ-512 generator (14 ws, ~30.6 M parameters)."""
    from backend.models.eg3d.generator import GeneratorConfig

    full = TriplaneGenerator(GeneratorConfig())
    assert full.num_ws == 14
    assert 29e6 < sum(p.numel() for p in full.parameters()) < 32e6


def test_same_seed_and_camera_give_the_same_avatar(generator):
    z = torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(3))
    first = generator(z, cameras(30))["image"]
    second = generator(z, cameras(30))["image"]
    assert torch.equal(first, second)
    other = generator(torch.randn(1, generator.z_dim), cameras(30))["image"]
    assert not torch.allclose(first, other)


def test_truncation_pulls_w_towards_the_average_and_style_mixing_swaps_late_ws(generator):
    z = torch.randn(4, generator.z_dim)
    generator.mapping(torch.randn(64, generator.z_dim), update_w_avg=True)
    full = generator.mapping(z)
    half = generator.mapping(z, truncation_psi=0.5)
    w_avg = generator.mapping_network.w_avg
    assert torch.allclose(half, w_avg + 0.5 * (full - w_avg), atol=1e-5)
    other = generator.mapping(torch.randn(4, generator.z_dim))
    mixed = generator.mix_styles(full, other, probability=1.0, generator=torch.Generator().manual_seed(0))
    for sample in range(4):
        from_other = (mixed[sample] == other[sample]).all(dim=1)
        cutoff = int(from_other.float().argmax())
        assert 1 <= cutoff < generator.num_ws and from_other[cutoff:].all() and not from_other[:cutoff].any()


def test_rays_match_a_hand_computed_pinhole_camera():
    """Camera at (0, 0, 3) looking at the origin with fx = fy = 2 (image widths), principal point 0.5."""
    label = make_label(look_at_cam2world((0.0, 0.0, 3.0)), [[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
    origins, directions = rays_from_labels(torch.tensor([label], dtype=torch.float64), 4)
    assert torch.allclose(origins[0], torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64).expand(16, 3))
    # Pixel (row 0, column 3): u = 0.875, v = 0.125 -> camera ray ((0.875-0.5)/2, (0.125-0.5)/2, 1).
    # This camera's OpenCV axes in head space: right = +x (the character's left), down = -y, forward = -z.
    x, y = 0.1875, -0.1875
    expected = torch.tensor([x, -y, -1.0], dtype=torch.float64)
    assert torch.allclose(directions[0, 3], expected / expected.norm())
    assert torch.allclose(directions.norm(dim=-1), torch.ones(1, 16, dtype=torch.float64))


def test_ray_box_bounds_and_misses():
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.0, 2.0, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    near, far, hit = ray_box_bounds(origins, directions, 0.5)
    assert torch.allclose(near[0], torch.tensor([2.5])) and torch.allclose(far[0], torch.tensor([3.5]))
    assert hit.tolist() == [True, False]


def test_renderer_finds_the_depth_of_an_analytic_sphere():
    """A dense sphere of radius 0.3 at the origin seen from radius 2.7: the centre ray stops at 2.4."""
    radius = 0.3

    def sphere(points):
        inside = (points.norm(dim=-1, keepdim=True) < radius).float()
        return {"sigma": inside * 1000.0 - 500.0 * (1 - inside) , "features": torch.ones(*points.shape[:-1], 3)}

    label = torch.tensor([orbit_label(25.0, -10.0)], dtype=torch.float32)
    origins, directions = rays_from_labels(label, 9)
    result = render_rays(sphere, origins, directions, RenderSettings(stratified_samples=64, importance_samples=64), jitter=False)
    centre = 4 * 9 + 4
    assert abs(result["depth"][0, centre, 0].item() - (2.7 - radius)) < 0.01
    assert result["accumulated"][0, centre, 0].item() > 0.99
    assert result["accumulated"][0, 0, 0].item() < 0.01  # the corner ray misses the sphere


def test_gradients_reach_every_generator_and_discriminator_parameter():
    torch.manual_seed(1)
    config = tiny_config()
    generator = TriplaneGenerator(config.generator).train()
    discriminator = DualDiscriminator(discriminator_config(config))
    c = cameras(0, 90, 180, -90)
    out = generator.synthesis(generator.mapping(torch.randn(4, generator.z_dim)), c, noise_mode="random")
    label = discriminator_labels(config.pose, c, torch.tensor([0.0, 90, 180, -90]), torch.full((4,), 10.0), torch.ones(4))
    discriminator(out["image"], out["image_raw"], label).sum().backward()
    # The super-resolution renders without noise (EG3D's 3D consistency), so its noise strengths stay unused.
    unused = {name for name, _ in generator.named_parameters() if name.startswith("superresolution.") and name.endswith("noise_strength")}
    assert config.generator.superresolution_noise_mode == "none" and unused
    for name, parameter in list(generator.named_parameters()) + list(discriminator.named_parameters()):
        if name not in unused:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_generator_checkpoint_round_trips_exactly(generator, tmp_path):
    save_generator(tmp_path, generator, extra={"images_seen": 7})
    loaded = load_generator(tmp_path)
    assert loaded.config == generator.config
    z = torch.randn(1, generator.z_dim)
    assert torch.equal(loaded(z, cameras(45))["image"], generator(z, cameras(45))["image"])
    assert (tmp_path / CONFIG_NAME).is_file() and not list(tmp_path.glob("*.pt*"))


def test_loading_a_checkpoint_of_another_kind_names_the_problem(tmp_path):
    from backend.formats.checkpoint import save_checkpoint

    save_checkpoint(tmp_path, "style-prior", tiny_config().pose, {})
    with pytest.raises(FormatError, match="eg3d-generator"):
        load_generator(tmp_path)


def test_coarse_to_fine_labels_keep_one_half_with_the_documented_probabilities():
    config = PoseConditioningConfig()
    count = 4000
    yaw = torch.cat([torch.zeros(count // 2), torch.full((count // 2,), 170.0)])
    pitch = torch.full((count,), 5.0)
    labels = discriminator_labels(config, torch.zeros(count, 25), yaw, pitch, torch.zeros(count), torch.Generator().manual_seed(0))
    fine_width = config.fine_yaw_bins + config.fine_pitch_bins
    assert labels.shape == (count, config.label_dim)
    fine_kept = labels[:, :fine_width].sum(dim=1) > 0
    coarse_kept = labels[:, fine_width:].sum(dim=1) > 0
    assert torch.all(fine_kept ^ coarse_kept)  # exactly one of the two halves per sample
    assert abs(fine_kept[: count // 2].float().mean().item() - config.p_high) < 0.04  # frontal: confident
    assert abs(fine_kept[count // 2:].float().mean().item() - config.p_low) < 0.04  # back view, low confidence
    # Each kept half is one-hot in yaw and in pitch.
    assert torch.all(labels.sum(dim=1) == 2)


def test_yaw_bins_wrap_around_the_back_of_the_head():
    assert yaw_bin(torch.tensor([179.0, -179.0, 0.0, 44.0, 46.0, -46.0]), 4).tolist() == [2, 2, 0, 0, 1, 3]


def test_plain_camera_conditioning_stays_available():
    config = PoseConditioningConfig(mode="camera")
    c = cameras(10, 20)
    assert torch.equal(discriminator_labels(config, c, torch.zeros(2), torch.zeros(2), torch.ones(2)), c)
    assert config.label_dim == 25
