"""The EG3D training loop: alternating G and D steps, lazy R1 and density regularization, blur
fade, EMA, ticks (progress, stats, sample grid) and snapshots that resume exactly where they stopped.

Run directory::

    config.json + model.safetensors   the EMA generator (what `generate` loads)
    train_state.safetensors           G, D, EMA, optimizers, counters (to resume)
    training_config.json              the TrainingConfig of the run
    stats.jsonl                       one line of losses and D statistics per tick
    samples/grid_<images>.png         EMA generator, fixed seeds (rows) x yaws (columns), per tick
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from backend.avatars import write_png
from backend.formats.checkpoint import load_train_state, save_train_state
from backend.formats.configs import config_to_dict
from backend.formats.multiview_dataset import read_dataset
from backend.models.eg3d.discriminator import DualDiscriminator
from backend.models.eg3d.generator import TriplaneGenerator, save_generator
from backend.models.eg3d.pose_conditioning import discriminator_labels
from backend.progress import Progress, SilentProgress, stop_if_cancelled
from blender_addon.formats.cameras import orbit_label
from blender_addon.formats.errors import FormatError
from training.datasets.multiview import MultiviewImages
from training.distributed import (DistributedContext, average_gradients, average_tensor, barrier,
                                  broadcast_module, init_distributed, replicas_identical)
from training.run_config import resolve_run_config as resolve_saved_config

from .config import TrainingConfig, discriminator_config, follow_dataset_background
from .ema import ema_beta, update_ema
from .losses import (blur_sigma_at, density_regularization, discriminator_adversarial_loss,
                     gaussian_blur, generator_adversarial_loss, r1_penalty)

STATS_NAME = "stats.jsonl"
DENSITY_REG_POINTS = 1000
RESUMABLE_CHANGES = ("total_images", "tick_images", "snapshot_ticks", "grid_seeds", "grid_yaws")
"""Settings a resumed run may change: how long it trains and how often it reports, not what it learns."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    images_seen: int
    generator: TriplaneGenerator
    generator_ema: TriplaneGenerator
    discriminator: DualDiscriminator
    ticks: list[dict] = field(default_factory=list)


class Eg3dTrainer:
    def __init__(self, data_dir: str | Path, run_dir: str | Path, config: TrainingConfig,
                 progress: Progress | None = None, context: DistributedContext | None = None) -> None:
        self.context = context or init_distributed()
        self.progress = progress if (progress is not None and self.context.is_main) else SilentProgress()
        self.run_dir = Path(run_dir)
        config = follow_dataset_background(config, read_dataset(data_dir, check_files=False).background)
        self.config = resolve_run_config(self.run_dir, config, write=self.context.is_main)
        if self.config.batch_size % self.context.world_size:
            raise FormatError("batch_size", f"{self.config.batch_size} does not split over {self.context.world_size} processes",
                              "use a batch size divisible by --nproc_per_node")
        self.local_batch = self.config.batch_size // self.context.world_size
        self.device = self.context.device
        self.dataset = MultiviewImages(data_dir, self.config.generator.output_resolution, mirror=self.config.mirror)
        self.data_dir = str(data_dir)
        torch.manual_seed(self.config.seed)
        self.G = TriplaneGenerator(self.config.generator).to(self.device).train()
        self.D = DualDiscriminator(discriminator_config(self.config)).to(self.device).train()
        self.G_ema = TriplaneGenerator(self.config.generator).to(self.device).eval().requires_grad_(False)
        self.G_ema.load_state_dict(self.G.state_dict())
        g_interval = self.config.density_reg_interval if self.config.density_reg > 0 else None
        d_interval = self.config.r1_interval if self.config.r1_gamma > 0 else None
        self.opt_G = lazy_regularized_adam(self.G.parameters(), self.config.g_lr, self.config.betas, g_interval)
        self.opt_D = lazy_regularized_adam(self.D.parameters(), self.config.d_lr, self.config.betas, d_interval)
        self.step = 0
        self.images_seen = 0
        self.ticks: list[dict] = []
        self._tick_sums: dict[str, float] = {}
        self._tick_count = 0
        self._resume()
        for module in (self.G, self.D, self.G_ema):
            broadcast_module(module, self.context)
        seed = self.config.seed * 7919 + self.context.rank * 104729 + self.step
        self.rng = torch.Generator().manual_seed(seed)
        self.use_autocast = self.config.mixed_precision and self.device.type == "cuda"

    # ----------------------------------------------------------------- state
    def _resume(self) -> None:
        state = load_train_state(self.run_dir)
        if state is None:
            return
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            self.G_ema.load_state_dict(state["G_ema"])
            self.opt_G.load_state_dict(state["opt_G"])
            self.opt_D.load_state_dict(state["opt_D"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise FormatError("train_state", f"the train state in {self.run_dir} does not fit this version's networks "
                              f"({str(error).splitlines()[0]})", "start a new run with another --out") from None
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])

    def _train_state(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "step": self.step, "images_seen": self.images_seen}

    def snapshot(self) -> None:
        """EMA generator checkpoint + full train state, each written atomically (main process only)."""
        if not self.context.is_main:
            return
        save_generator(self.run_dir, self.G_ema, extra={
            "images_seen": self.images_seen, "step": self.step, "dataset": self.data_dir,
            "training_config": config_to_dict(self.config)})
        save_train_state(self.run_dir, self._train_state())

    # ----------------------------------------------------------------- data
    def _real_batch(self) -> dict[str, torch.Tensor]:
        indices = torch.randint(len(self.dataset), (self.local_batch,), generator=self.rng)
        return {key: value.to(self.device) for key, value in self.dataset.batch(indices).items()}

    def _camera_batch(self) -> dict[str, torch.Tensor]:
        """Cameras for fakes: poses of random dataset items (so fakes follow the data's pose distribution)."""
        indices = torch.randint(len(self.dataset), (self.local_batch,), generator=self.rng)
        return {key: value.to(self.device) for key, value in self.dataset.pose(indices).items()}

    def _d_labels(self, pose: dict[str, torch.Tensor]) -> torch.Tensor:
        return discriminator_labels(self.config.pose, pose["label"], pose["yaw"], pose["pitch"],
                                    pose["pose_confidence"], generator=self.rng).to(self.device)

    def _z(self) -> torch.Tensor:
        return torch.randn(self.local_batch, self.config.generator.z_dim, generator=self.rng).to(self.device)

    # ----------------------------------------------------------------- steps
    def _blurred(self, image: torch.Tensor, image_raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's inputs early in training: the super-resolved image blurred (fading out), the raw one as it is,
        as EG3D has it: the raw image is low resolution already."""
        sigma = blur_sigma_at(self.images_seen, self.config.blur_sigma, self.config.blur_fade_images)
        return gaussian_blur(image, sigma), image_raw

    def _conditioning_cameras(self, cameras: torch.Tensor) -> torch.Tensor:
        """With generator pose conditioning: EG3D's swapping regularization, another sample's camera
        with probability ``gpc_swap_prob``, so that identity does not lock to the rendering pose."""
        if not self.config.generator.pose_conditioning or self.config.gpc_swap_prob <= 0:
            return cameras
        swap = (torch.rand(len(cameras), generator=self.rng) < self.config.gpc_swap_prob).to(self.device)
        return torch.where(swap[:, None], self._camera_batch()["label"], cameras)

    def _styles(self, pose: dict[str, torch.Tensor], update_w_avg: bool) -> torch.Tensor:
        cameras = self._conditioning_cameras(pose["label"])
        ws = self.G.mapping(self._z(), cameras, update_w_avg=update_w_avg)
        if self.config.style_mixing_prob > 0:
            ws = self.G.mix_styles(ws, self.G.mapping(self._z(), cameras), self.config.style_mixing_prob, self.rng)
        return ws

    def neural_rendering_resolution(self) -> int:
        """The rendering resolution now: a linear fade from ``neural_rendering_initial`` to the generator's."""
        final = self.config.generator.neural_rendering_resolution
        initial = self.config.neural_rendering_initial
        if initial is None or self.config.neural_rendering_fade_images <= 0:
            return final
        fraction = min(self.images_seen / self.config.neural_rendering_fade_images, 1.0)
        return int(round(initial + (final - initial) * fraction))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_autocast)

    def generator_step(self) -> dict[str, float]:
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        pose = self._camera_batch()
        ws = self._styles(pose, update_w_avg=True)
        with self._autocast():
            fake = self.G.synthesis(ws, pose["label"], self.neural_rendering_resolution(), noise_mode="random", jitter=True)
            logits = self.D(*self._blurred(fake["image"], fake["image_raw"]), self._d_labels(pose))
        loss = generator_adversarial_loss(logits.float())
        stats = {"loss_g": loss.item()}
        if self.config.density_reg > 0 and self.step % self.config.density_reg_interval == 0:
            density = density_regularization(self.G, ws, DENSITY_REG_POINTS, self.config.density_reg_noise, self.rng)
            loss = loss + density * self.config.density_reg * self.config.density_reg_interval
            stats["density_reg"] = density.item()
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.G.parameters(), self.context)
        self.opt_G.step()
        average_tensor(self.G.mapping_network.w_avg, self.context)
        return stats

    def discriminator_step(self) -> dict[str, float]:
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        pose = self._camera_batch()
        real = self._real_batch()
        with torch.no_grad(), self._autocast():
            fake = self.G.synthesis(self._styles(pose, update_w_avg=False), pose["label"], self.neural_rendering_resolution(),
                                    noise_mode="random", jitter=True)
        raw_size = (self.neural_rendering_resolution(),) * 2
        real_raw = F.interpolate(real["image"], size=raw_size, mode="bilinear", align_corners=False, antialias=True)
        real_labels = self._d_labels(real)
        with self._autocast():
            fake_logits = self.D(*self._blurred(fake["image"].float(), fake["image_raw"].float()), self._d_labels(pose)).float()
            real_logits = self.D(*self._blurred(real["image"], real_raw), real_labels).float()
        loss = discriminator_adversarial_loss(real_logits, fake_logits)
        stats = {"loss_d": loss.item(), "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item(),
                 "d_accuracy": 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()).item()}
        if self.config.r1_gamma > 0 and self.step % self.config.r1_interval == 0:
            penalty, _ = r1_penalty(self.D, real["image"], real_raw, real_labels, preprocess=self._blurred)
            loss = loss + penalty * (self.config.r1_gamma / 2) * self.config.r1_interval
            stats["r1"] = penalty.item()
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.D.parameters(), self.context)
        self.opt_D.step()
        return stats

    def train_step(self) -> dict[str, float]:
        stop_if_cancelled(self.progress, min(self.images_seen / self.config.total_images, 1.0))
        generator_stats = self.generator_step()
        stop_if_cancelled(self.progress, min(self.images_seen / self.config.total_images, 1.0))
        stats = {**generator_stats, **self.discriminator_step()}
        self.images_seen += self.config.batch_size
        self.step += 1
        update_ema(self.G_ema, self.G, ema_beta(self.config.batch_size, self.images_seen,
                                               self.config.ema_half_life_images, self.config.ema_rampup))
        return stats

    # ----------------------------------------------------------------- ticks
    def _accumulate(self, stats: dict[str, float]) -> None:
        for key, value in stats.items():
            self._tick_sums[key] = self._tick_sums.get(key, 0.0) + value
        self._tick_count += 1

    def _end_tick(self) -> dict:
        tick = {"step": self.step, "images_seen": self.images_seen,
                **{key: value / max(self._tick_count, 1) for key, value in self._tick_sums.items()}}
        self._tick_sums, self._tick_count = {}, 0
        self.ticks.append(tick)
        if self.context.is_main:
            with open(self.run_dir / STATS_NAME, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(tick) + "\n")
            self.write_sample_grid()
        return tick

    @torch.no_grad()
    def write_sample_grid(self) -> Path:
        """Fixed seeds (rows) x fixed yaws (columns) from the EMA generator, one PNG per tick."""
        seeds = torch.Generator().manual_seed(self.config.seed)
        z = torch.randn(self.config.grid_seeds, self.config.generator.z_dim, generator=seeds).to(self.device)
        cameras = torch.tensor([orbit_label(yaw, 0.0) for yaw in self.config.grid_yaws], dtype=torch.float32, device=self.device)
        rows = []
        for index in range(z.shape[0]):
            zs = z[index:index + 1].repeat(len(cameras), 1)
            with self._autocast():
                images = self.G_ema(zs, cameras)["image"].float()
            rows.append(torch.cat(list(images), dim=2))
        path = self.run_dir / "samples" / f"grid_{self.images_seen:09d}.png"
        write_png(path, torch.cat(rows, dim=1))
        return path

    # ----------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        total = self.config.total_images
        ticks_done = 0
        try:
            while self.images_seen < total:
                previous_tick = self.images_seen // self.config.tick_images
                self._accumulate(self.train_step())
                finished = self.images_seen >= total
                if self.images_seen // self.config.tick_images > previous_tick or finished:
                    tick = self._end_tick()
                    ticks_done += 1
                    if ticks_done % self.config.snapshot_ticks == 0 or finished:
                        self._checked_snapshot()
                    self.progress.update(min(self.images_seen / total, 1.0),
                                         f"training: {self.images_seen}/{total} images, D accuracy {tick.get('d_accuracy', 0):.2f}")
                else:
                    self.progress.update(min(self.images_seen / total, 1.0), f"training: {self.images_seen}/{total} images")
        except (Exception, KeyboardInterrupt):
            # Cancelled, interrupted or failed: keep the work done so far so that the run resumes from here.
            self.snapshot()
            raise
        return TrainResult(self.run_dir, self.step, self.images_seen, self.G, self.G_ema, self.D, self.ticks)

    def _checked_snapshot(self) -> None:
        if not replicas_identical(self.G, self.context) or not replicas_identical(self.D, self.context):
            raise RuntimeError("processes hold different weights; gradients were not synchronised")
        self.snapshot()
        barrier(self.context)


def lazy_regularized_adam(parameters, lr: float, betas: tuple[float, float], interval: int | None) -> torch.optim.Adam:
    """Adam for a network whose regularizer runs every ``interval`` steps (StyleGAN2's lazy regularization):
    that step counts as ``interval + 1`` minibatches' worth of updates, so the learning rate and the betas
    are scaled by ``interval / (interval + 1)`` to keep the effective step the same as without laziness."""
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(parameters, lr=lr * ratio, betas=tuple(beta ** ratio for beta in betas), eps=1e-8)


def resolve_run_config(run_dir: Path, requested: TrainingConfig, write: bool = True) -> TrainingConfig:
    """The run's config; a resumed run may change only ``RESUMABLE_CHANGES`` (training/run_config.py)."""
    return resolve_saved_config(run_dir, requested, RESUMABLE_CHANGES, write=write)


def train_eg3d(data_dir: str | Path, run_dir: str | Path, config: TrainingConfig, progress: Progress | None = None,
               context: DistributedContext | None = None) -> TrainResult:
    """Train (or resume) an EG3D run; the same call works single-process and under torchrun."""
    return Eg3dTrainer(data_dir, run_dir, config, progress, context).run()
