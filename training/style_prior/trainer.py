"""Training the style prior on pairs the trained generator makes on the fly; resumable, DDP-ready.

``train_style_prior(generator_dir, out_dir, options, progress)`` writes a style-prior checkpoint to
``out_dir`` (``model.safetensors`` + ``config.json``), ``train_state.safetensors`` to resume, and
``metrics.json`` with the reconstruction errors measured at the end. Running it again on the same
``out_dir`` resumes from the last snapshot; a cancel (or Ctrl-C) snapshots first, so nothing is lost.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from backend.errors import AvatarFoundryError, InvalidInput
from backend.formats.checkpoint import CONFIG_NAME, TRAIN_STATE_NAME, load_train_state, save_train_state
from backend.formats.configs import config_from_dict, config_to_dict
from backend.models.eg3d.generator import load_generator
from backend.models.style_prior.checkpoint import load_style_prior, save_style_prior
from backend.models.style_prior.config import ENCODER_KINDS, EncoderConfig, preset
from backend.models.style_prior.prior import DEFAULT_GUIDANCE_SCALE, DEFAULT_SAMPLING_STEPS, StylePrior
from backend.progress import Progress, SilentProgress, stop_if_cancelled
from blender_addon.formats.files import atomic_write_json

from ..distributed import (DistributedContext, average_gradients, average_tensor, barrier, broadcast_module,
                           init_distributed)
from .evaluation import reconstruction_errors
from .pairs import PairOptions, make_pairs, w_statistics

METRICS_NAME = "metrics.json"


@dataclass
class StylePriorTrainOptions:
    config: str = "small"
    """Size preset of the prior: tiny, small or full (w_dim always follows the generator)."""
    encoder: str = "conv"
    clip_model: str = ""
    """For encoder 'clip': the local CLIP vision folder (or model-store name)."""
    steps: int = 20000
    batch_size: int = 32
    pair_reuse: int = 1
    """Optimizer steps per rendered batch (fresh noise and timesteps each time); above 1 when
    rendering dominates the step time."""
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    snapshot_every: int = 500
    w_statistics_samples: int = 10000
    evaluation_avatars: int = 16
    seed: int = 0
    pairs: PairOptions = field(default_factory=PairOptions)

    def __post_init__(self) -> None:
        if self.encoder not in ENCODER_KINDS:
            raise InvalidInput(f"unknown encoder {self.encoder!r}", f"use one of: {', '.join(ENCODER_KINDS)}", field="encoder")
        if self.encoder == "clip" and not self.clip_model:
            raise InvalidInput("the CLIP encoder needs its weights", "pass the local folder of a CLIP vision model", field="clip_model")
        for name in ("steps", "batch_size", "pair_reuse", "snapshot_every", "w_statistics_samples", "evaluation_avatars"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1, got {getattr(self, name)}", field=name)


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    last_loss: float
    metrics: dict[str, float]
    prior: torch.nn.Module
    """The trained prior (every rank holds the same weights)."""


def train_style_prior(
    generator_dir: Path,
    out_dir: Path,
    options: StylePriorTrainOptions,
    progress: Progress,
    device: Any = "cpu",
    resolve: Callable[[str], Path] = Path,
    generator_reference: str | None = None,
) -> TrainResult:
    """Train (or resume) a prior for the generator in ``generator_dir``.

    Under torchrun each rank renders its own pairs (``batch_size`` is split over the ranks),
    gradients are averaged, and rank 0 alone writes snapshots, metrics and progress.
    """
    ddp = init_distributed(device)
    device = ddp.device
    out_dir = Path(out_dir)
    progress = progress if ddp.is_main else SilentProgress()
    progress.update(0.0, "loading the generator")
    generator = load_generator(generator_dir, device)
    prior, step, state = _start_or_resume(generator, out_dir, options, device, resolve)
    broadcast_module(prior, ddp)
    prior.train()
    trainable = [p for p in prior.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate, weight_decay=options.weight_decay)
    rng = torch.Generator().manual_seed(options.seed * 1000 + ddp.rank)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        rng.set_state(state["rng"][ddp.rank % len(state["rng"])])
    batch_per_rank = max(1, options.batch_size // ddp.world_size)
    extra = {"generator": generator_reference or str(generator_dir), "w_dim": generator.config.w_dim,
             "options": config_to_dict(options)}
    last_loss = float("nan")

    def snapshot() -> None:
        rng_states = _gather_rng_states(rng, ddp)
        if ddp.is_main:
            save_style_prior(out_dir, prior, {**extra, "steps": step, "last_loss": last_loss})
            save_train_state(out_dir, {"step": step, "optimizer": optimizer.state_dict(), "rng": rng_states})
        barrier(ddp)

    progress.update(0.95 * step / options.steps, f"starting training at step {step + 1} of {options.steps}")
    try:
        while step < options.steps:
            w, images = make_pairs(generator, batch_per_rank, options.pairs, rng, device)
            for _ in range(min(options.pair_reuse, options.steps - step)):
                loss = prior.training_loss(w, images, rng)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                average_gradients(trainable, ddp)
                optimizer.step()
                step, last_loss = step + 1, float(average_tensor(loss.detach().clone(), ddp))
                if step % options.snapshot_every == 0:
                    snapshot()
                progress.update(0.95 * step / options.steps, f"training step {step}/{options.steps}, loss {last_loss:.4f}")
    except (AvatarFoundryError, KeyboardInterrupt):
        if not ddp.enabled:
            snapshot()
        raise
    snapshot()
    metrics: dict[str, float] = {}
    if ddp.is_main:
        stop_if_cancelled(progress, 0.95)
        progress.update(0.95, "measuring reconstruction")
        prior.eval()
        metrics = reconstruction_errors(prior, generator, options.evaluation_avatars, options.seed + 1,
                                        DEFAULT_SAMPLING_STEPS, DEFAULT_GUIDANCE_SCALE, device)
        atomic_write_json(out_dir / METRICS_NAME, {"steps": step, "last_loss": last_loss, **metrics})
        progress.update(1.0, "done")
    barrier(ddp)
    return TrainResult(out_dir, step, last_loss, metrics, prior)


def _gather_rng_states(rng: torch.Generator, ddp: DistributedContext) -> list[torch.Tensor]:
    """Every rank's pair-sampling RNG state, so a resumed run draws the pairs it would have drawn."""
    state = rng.get_state()
    if not ddp.enabled:
        return [state]
    import torch.distributed as dist

    states = [torch.empty_like(state) for _ in range(ddp.world_size)]
    dist.all_gather(states, state)
    return states


def _start_or_resume(generator, out_dir: Path, options: StylePriorTrainOptions, device, resolve) -> tuple[StylePrior, int, dict | None]:
    """A new prior with the generator's w statistics, or the one saved in ``out_dir`` to resume."""
    state = load_train_state(out_dir)
    if state is not None:
        prior, extra = load_style_prior(out_dir, device, resolve)
        saved = config_from_dict(StylePriorTrainOptions, extra.get("options", {}), "config.json.extra.options")
        _check_resumable(saved, options)
        if prior.config.w_dim != generator.config.w_dim:
            raise InvalidInput(f"{out_dir} holds a prior for w_dim {prior.config.w_dim}, the generator has {generator.config.w_dim}",
                               "use a new --out folder for another generator", field="out")
        return prior, int(state["step"]), state
    if (out_dir / CONFIG_NAME).is_file():
        raise InvalidInput(f"{out_dir} holds a checkpoint but no {TRAIN_STATE_NAME} to resume from",
                           "pass a new --out folder, so the existing prior is not overwritten", field="out")
    config = preset(options.config, w_dim=generator.config.w_dim)
    if options.encoder == "clip":
        config = dataclasses.replace(config, encoder=EncoderConfig(kind="clip", clip_model=options.clip_model), condition_dim=_clip_dim(options.clip_model, resolve))
    else:
        config = dataclasses.replace(config, condition_dim=config.encoder.conv.embedding_dim)
    torch.manual_seed(options.seed)
    prior = StylePrior(config, resolve).to(device)
    mean, std = w_statistics(generator, options.w_statistics_samples, torch.Generator().manual_seed(options.seed + 2), device)
    prior.set_w_statistics(mean, std)
    return prior, 0, None


def _check_resumable(saved: StylePriorTrainOptions, requested: StylePriorTrainOptions) -> None:
    """Resuming may change the length of training and snapshot cadence, not what is being trained."""
    for name in ("config", "encoder", "clip_model"):
        if getattr(saved, name) != getattr(requested, name):
            raise InvalidInput(f"the run being resumed used {name}={getattr(saved, name)!r}, not {getattr(requested, name)!r}",
                               "pass the same setting, or a new --out folder to start over", field=name)


def _clip_dim(clip_model: str, resolve) -> int:
    from transformers import CLIPVisionConfig

    return int(CLIPVisionConfig.from_pretrained(str(resolve(clip_model)), local_files_only=True).projection_dim)
