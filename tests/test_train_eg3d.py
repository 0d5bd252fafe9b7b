"""Training the tiny EG3D on a tiny real dataset: it learns (a fresh probe discriminator tells its
images from real ones less easily than the untrained generator's), resumes where it stopped, stops
cleanly on cancel, and the CLI / job kinds drive it end to end."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.errors import Cancelled
from backend.formats.checkpoint import load_train_state
from backend.jobs.registry import JobContext, get_kind
from backend.model_cache import ModelCache
from backend.models.eg3d.discriminator import DiscriminatorConfig, DualDiscriminator
from backend.models.eg3d.generator import TriplaneGenerator, load_generator
from backend.progress import SilentProgress
from blender_addon.formats.cameras import mirror_label
from blender_addon.formats.errors import FormatError
from training.datasets.multiview import MultiviewImages
from training.eg3d.config import configure, tiny_config
from training.eg3d.trainer import STATS_NAME, Eg3dTrainer, train_eg3d

TRAIN_IMAGES = 400  # 100 steps of 4 images

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def trained_run(single_torch_thread, sphere_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eg3d_run")
    config = replace(tiny_config(), total_images=TRAIN_IMAGES, tick_images=200)
    progress = SilentProgress()
    result = train_eg3d(sphere_dataset, run_dir, config, progress)
    return run_dir, config, result, progress


def probe_loss(real: torch.Tensor, fake: torch.Tensor, steps: int = 20) -> float:
    """Held-out logistic loss of a small fresh discriminator trained briefly to tell ``real`` from ``fake``.

    A two-sample test: the closer the fakes are to the real distribution, the higher the loss a probe
    of fixed size and training budget is left with. Half of each set trains it, the other half scores it.
    """
    torch.manual_seed(0)
    probe = DualDiscriminator(DiscriminatorConfig(resolution=real.shape[-1], label_dim=0, channel_base=256, channel_max=16, cmap_dim=16))
    optimizer = torch.optim.Adam(probe.parameters(), lr=0.002, betas=(0.0, 0.99))
    half = len(real) // 2
    no_label = torch.zeros(half, 0)

    def loss(real_part, fake_part):
        raw = lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)  # noqa: E731
        return (F.softplus(-probe(real_part, raw(real_part), no_label)).mean()
                + F.softplus(probe(fake_part, raw(fake_part), no_label)).mean()) / 2

    for _ in range(steps):
        optimizer.zero_grad()
        loss(real[:half], fake[:half]).backward()
        optimizer.step()
    with torch.no_grad():
        return loss(real[half:], fake[half:]).item()


def generated_images(generator: TriplaneGenerator, dataset: MultiviewImages, count: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(2)
    cameras = dataset.labels[torch.randint(len(dataset), (count,), generator=rng)]
    with torch.no_grad():
        return generator.eval()(torch.randn(count, generator.z_dim, generator=rng), cameras)["image"].clamp(-1, 1)


def test_training_makes_fakes_harder_to_tell_from_real_images(trained_run, sphere_dataset):
    run_dir, config, result, _ = trained_run
    dataset = MultiviewImages(sphere_dataset, config.generator.output_resolution)
    real = dataset.batch(torch.randint(len(dataset), (48,), generator=torch.Generator().manual_seed(1)))["image"]
    torch.manual_seed(config.seed)
    untrained = TriplaneGenerator(config.generator)  # the trainer's starting weights (same seed)
    trained = load_generator(run_dir)
    before = probe_loss(real, generated_images(untrained, dataset, 48))
    after = probe_loss(real, generated_images(trained, dataset, 48))
    print(f"probe loss before {before:.4f} after {after:.4f}")
    assert after > 1.2 * before, (before, after)


def test_run_folder_holds_checkpoint_stats_grids_and_resumable_state(trained_run):
    run_dir, config, result, progress = trained_run
    assert result.images_seen == TRAIN_IMAGES and result.step == TRAIN_IMAGES // config.batch_size
    ticks = [json.loads(line) for line in (run_dir / STATS_NAME).read_text().splitlines()]
    assert [tick["images_seen"] for tick in ticks] == [200, 400]
    assert all(np.isfinite(value) for tick in ticks for value in tick.values())
    assert {"loss_g", "loss_d", "d_accuracy", "r1", "density_reg"} <= set(ticks[0])
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["grid_000000200.png", "grid_000000400.png"]
    state = load_train_state(run_dir)
    assert state["images_seen"] == TRAIN_IMAGES and set(state) >= {"G", "D", "G_ema", "opt_G", "opt_D"}
    assert progress.reports[-1][0] == 1.0


def test_training_resumes_from_the_train_state(trained_run, sphere_dataset, tmp_path):
    import shutil

    run_dir, config, result, _ = trained_run
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed_dir)
    resumed = train_eg3d(sphere_dataset, resumed_dir, replace(config, total_images=TRAIN_IMAGES + 8, tick_images=4))
    assert resumed.step == result.step + 2 and resumed.images_seen == TRAIN_IMAGES + 8  # reporting may change on resume
    with pytest.raises(FormatError, match="r1_gamma"):
        train_eg3d(sphere_dataset, resumed_dir, replace(config, r1_gamma=7.0, total_images=TRAIN_IMAGES + 16))


def test_cancelling_keeps_a_resumable_snapshot(sphere_dataset, tmp_path):
    class CancelAfter(SilentProgress):
        def update(self, fraction, stage):
            super().update(fraction, stage)
            if len(self.reports) >= 2:
                raise Cancelled()

    with pytest.raises(Cancelled):
        train_eg3d(sphere_dataset, tmp_path, replace(tiny_config(), total_images=400), CancelAfter())
    assert load_train_state(tmp_path)["step"] == 2
    assert load_generator(tmp_path).config == tiny_config().generator


def test_a_cancel_during_the_generator_phase_stops_before_the_discriminator_phase(sphere_dataset, tmp_path):
    """A cancel that arrives inside a training step takes effect at the step's next phase boundary
    (between G and D), not a whole step later; the snapshot keeps the steps that completed."""
    progress = SilentProgress()
    trainer = Eg3dTrainer(sphere_dataset, tmp_path, replace(tiny_config(), total_images=400), progress)
    optimizer_steps = {"G": 0, "D": 0}

    def count(name):
        def hook(optimizer, args, kwargs):
            optimizer_steps[name] += 1
            if name == "G" and optimizer_steps["G"] == 3:
                progress.stop_requested = True  # the user cancels while step 3's generator phase runs
        return hook

    trainer.opt_G.register_step_post_hook(count("G"))
    trainer.opt_D.register_step_post_hook(count("D"))
    with pytest.raises(Cancelled):
        trainer.run()
    assert optimizer_steps == {"G": 3, "D": 2}
    assert progress.reports[-1][1] == "stopping"
    assert load_train_state(tmp_path)["step"] == 2


def test_mirrored_items_flip_image_and_camera_together(sphere_dataset):
    dataset = MultiviewImages(sphere_dataset, 32, mirror=True)
    count = len(dataset.manifest.items)
    assert len(dataset) == 2 * count
    assert torch.equal(dataset.load_image(count + 3), dataset.load_image(3).flip(-1))
    assert torch.allclose(dataset.labels[count + 3], torch.tensor(mirror_label(dataset.manifest.items[3].label)))
    assert dataset.yaw[count + 3] == -dataset.yaw[3]


def test_cli_trains_and_generates(sphere_dataset, tmp_path):
    from backend.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "eg3d", "--data", str(sphere_dataset), "--out", str(run_dir), "--config", "tiny",
                 "--total-images", "8", "--pose-conditioning", "camera"]) == 0
    assert json.loads((run_dir / "training_config.json").read_text())["pose"]["mode"] == "camera"
    out = tmp_path / "avatar"
    assert main(["generate", "--checkpoint", str(run_dir), "--seed", "3", "--out", str(out), "--no-mesh"]) == 0
    assert json.loads((out / "avatar.json").read_text())["seed"] == 3
    assert len(list((out / "previews").glob("*.png"))) == 6


def test_job_kinds_train_and_generate_an_avatar(sphere_dataset, tmp_path):
    outputs = {"data": sphere_dataset, "run": tmp_path / "run"}
    resolve = lambda ref: outputs[ref.removeprefix("job:")]  # noqa: E731

    def context(name: str) -> JobContext:
        (tmp_path / name).mkdir(exist_ok=True)
        return JobContext(name, tmp_path / name, None, SilentProgress(), ModelCache(), resolve, "cpu")

    train = get_kind("train-eg3d")
    train.run(train.params(dataset="job:data", config="tiny", total_images=8), context("run"))
    generate = get_kind("generate-avatar")
    params = generate.params(checkpoint="job:run", seed=1, preview_yaws=[0.0], mesh_resolution=24, mesh_level=0.0,
                             max_faces=2000, texture_size=64, export_mesh=False)
    generate.run(params, context("avatar"))
    assert (tmp_path / "avatar" / "previews" / "yaw_+000.png").is_file()
    with pytest.raises(FormatError, match="unknown preset"):
        configure("huge")


def test_generator_pose_conditioning_option_trains_and_loads(sphere_dataset, tmp_path):
    """EG3D's camera-conditioned mapping (with swapping regularization) stays available."""
    from backend.models.eg3d.generator import tiny_generator_config

    config = replace(tiny_config(), generator=tiny_generator_config(pose_conditioning=True), total_images=8, gpc_swap_prob=1.0)
    train_eg3d(sphere_dataset, tmp_path, config)
    generator = load_generator(tmp_path)
    assert generator.mapping_network.embed_c is not None
    with pytest.raises(ValueError, match="pose-conditioned"):
        generator.mapping_network(torch.randn(1, generator.z_dim))


def test_neural_rendering_resolution_fades_up_during_training(sphere_dataset, tmp_path):
    from training.eg3d.trainer import Eg3dTrainer

    config = replace(tiny_config(), neural_rendering_initial=8, neural_rendering_fade_images=8, total_images=12)
    trainer = Eg3dTrainer(sphere_dataset, tmp_path, config)
    seen = []
    while trainer.images_seen < config.total_images:
        seen.append(trainer.neural_rendering_resolution())
        trainer.train_step()
    assert seen == [8, 12, 16]  # 0, 4 and 8 of 8 fade images
