"""Training the deferred renderer on one character's deferred dataset; resumable.

``train_deferred(data_dir, out_dir, options, store, progress)`` (``store``: None without a prior) writes into ``out_dir`` the
renderer checkpoint (``model.safetensors`` + ``config.json``), ``train_state.safetensors`` (optimizer,
step, random state, loss history) and ``validation/step_<n>.png`` (rendered | target rows for held-out
renders). Running again on the same ``out_dir`` resumes; a cancel (or Ctrl-C) snapshots first.
The stage moves to training before the first step runs and with every step after it; a cancel is
seen before the first step, after every step and between a step's micro-batches.

As in DiffusionAvatars: MSE on the model's prediction target, AdamW with the tri-plane features
at a much higher learning rate (1e-2) than the networks (1e-4 on a latent-diffusion prior; 1e-3 for a
UNet trained from scratch, ``prior='none'``), gradient clipping of the networks, random crops; optionally
a linear warm-up and a cosine decay of both rates to zero at the last step. Mixed precision (bf16/fp16 autocast) and gradient accumulation fit it in less memory.
Under ``torchrun`` every rank trains on its own random batches from rank 0's weights, gradients are
averaged (training/distributed.py), and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from backend.errors import Cancelled, InvalidInput
from backend.formats.checkpoint import load_train_state, load_weights, save_train_state
from backend.formats.configs import config_to_dict
from backend.models.deferred.channels import ChannelLayout
from backend.models.deferred.checkpoint import build_renderer, load_trained_weights, read_renderer_config, save_renderer
from backend.models.deferred.conditions import ConditionTensors, require_geometry_passes
from backend.models.deferred.priors import LEARNING_RATE_SCHEDULES, NETWORK_LEARNING_RATES, PRIORS
from backend.models.deferred.renderer import DeferredRenderer, DeferredRendererConfig
from backend.models.deferred.scratch_unet import ScratchUNetConfig
from backend.models.diffusion_loading import load_base_scheduler
from backend.models.store import ModelStore
from backend.progress import Progress, stop_if_cancelled
from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write

from ..distributed import DistributedContext, average_gradients, barrier, broadcast_module, init_distributed
from .dataset import DeferredDataset, HoldOut, load_deferred_bundle, split_renders

PRECISIONS = ("auto", "no", "bf16", "fp16")


@dataclass
class DeferredTrainOptions:
    base: str = ""
    """Model-store name of the frozen base (SD 1.x/2.x); only with the latent-diffusion prior."""
    prior: str = "latent-diffusion"
    """'latent-diffusion' (ControlNet on the frozen base) or 'none' (a UNet trained from scratch in pixel space)."""
    scratch_unet: ScratchUNetConfig = field(default_factory=ScratchUNetConfig)
    """Architecture of the from-scratch UNet (prior 'none' only)."""
    mode: str = "diffusion"
    """'diffusion' (the method) or 'direct' (the paper's one-pass baseline)."""
    resolution: int = 512
    steps: int = 100_000
    batch_size: int = 8
    gradient_accumulation: int = 1
    learning_rate_networks: float | None = None
    """None: by prior (NETWORK_LEARNING_RATES)."""
    learning_rate_planes: float = 1e-2
    learning_rate_schedule: str = "constant"
    """'constant', or 'cosine': both rates decay to zero at the last step (after the warm-up)."""
    warmup_steps: int = 0
    """Both rates rise linearly from zero over this many steps."""
    weight_decay: float = 1e-2
    gradient_clip: float = 1.0
    crop_min: float = 0.7
    """Random square crops take this fraction of the shorter side at least (1.0: no cropping)."""
    mixed_precision: str = "auto"
    """'auto' (bf16 on CUDA, none on CPU), 'no', 'bf16' or 'fp16'."""
    checkpoint_every: int = 1000
    validate_every: int = 1000
    validation_renders: int = 4
    hold_out: HoldOut = field(default_factory=HoldOut)
    channels: ChannelLayout = field(default_factory=ChannelLayout)
    triplane_resolution: int = 512
    expression_tokens: int = 4
    prediction_type: str = "auto"
    """'auto' follows the base model (the frozen UNet was trained for one target); or 'epsilon' / 'v_prediction'."""
    zero_terminal_snr: bool | None = None
    """None: on for v-prediction (as the paper), off for epsilon."""
    num_inference_steps: int = 20
    seed: int = 181998

    def __post_init__(self) -> None:
        for name in ("resolution", "steps", "batch_size", "gradient_accumulation", "checkpoint_every", "validate_every"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1, got {getattr(self, name)}", field=name)
        if not 0.1 <= self.crop_min <= 1.0:
            raise InvalidInput(f"crop_min must lie in [0.1, 1], got {self.crop_min}", field="crop_min")
        if self.mixed_precision not in PRECISIONS:
            raise InvalidInput(f"unknown mixed precision {self.mixed_precision!r}", f"use one of: {', '.join(PRECISIONS)}", field="mixed_precision")
        if self.mode not in ("diffusion", "direct"):
            raise InvalidInput(f"unknown mode {self.mode!r}", "use 'diffusion' or 'direct'", field="mode")
        if self.prior not in PRIORS:
            raise InvalidInput(f"unknown prior {self.prior!r}", f"use one of: {', '.join(PRIORS)}", field="prior")
        if self.prior == "latent-diffusion" and not self.base:
            raise InvalidInput("the latent-diffusion prior needs a base model", "name one with --base, or train with --prior none", field="base")
        if self.prior == "none" and self.base:
            raise InvalidInput(f"a renderer trained from scratch (--prior none) uses no base model, but {self.base!r} was given",
                               "leave out --base, or train on it with --prior latent-diffusion", field="base")
        if self.learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
            raise InvalidInput(f"unknown learning-rate schedule {self.learning_rate_schedule!r}",
                               f"use one of: {', '.join(LEARNING_RATE_SCHEDULES)}", field="lr_schedule")
        if self.warmup_steps < 0 or (self.learning_rate_networks is not None and self.learning_rate_networks <= 0):
            raise InvalidInput("warmup_steps must be >= 0 and the learning rate > 0", field="lr")

    @property
    def network_learning_rate(self) -> float:
        return NETWORK_LEARNING_RATES[self.prior] if self.learning_rate_networks is None else self.learning_rate_networks


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    losses: list[float]


def renderer_config(options: DeferredTrainOptions, expression_names: list[str], store: ModelStore | None) -> DeferredRendererConfig:
    """The checkpoint config for a new run: the prediction target follows the base model unless given
    (v-prediction without a prior)."""
    prediction_type = options.prediction_type
    if prediction_type == "auto" and options.prior == "none":
        prediction_type = "v_prediction"
    elif prediction_type == "auto":
        scheduler = load_base_scheduler(store.resolve(options.base, role="base"))
        prediction_type = scheduler.config.get("prediction_type", "epsilon")
    zero_snr = prediction_type == "v_prediction" if options.zero_terminal_snr is None else options.zero_terminal_snr
    try:
        return DeferredRendererConfig(
            base=options.base, expression_names=tuple(expression_names), prior=options.prior,
            scratch_unet=options.scratch_unet if options.prior == "none" else None, mode=options.mode, channels=options.channels,
            triplane_resolution=options.triplane_resolution, expression_tokens=options.expression_tokens,
            prediction_type=prediction_type, zero_terminal_snr=zero_snr,
            timestep_spacing="trailing" if zero_snr else "leading",
            num_inference_steps=options.num_inference_steps, seed=options.seed,
        )
    except ValueError as error:
        raise InvalidInput(str(error), "choose v-prediction with a zero-terminal-SNR schedule, or turn it off", field="prediction_type") from None


def channels_for_proxy(options: DeferredTrainOptions, bundle) -> DeferredTrainOptions:
    """DiffusionAvatars' full channel layout when the proxy has ambient coordinates (an NPHM proxy's renders
    carry an 'ambient' pass); a bundle where only some renders have it is refused, naming one without."""
    if not bundle.renders_with("ambient") or options.channels.ambient_dims:
        return options
    try:
        require_geometry_passes(bundle, with_ambient=True)
    except FormatError as error:
        raise InvalidInput.from_format_error(error) from None
    return replace(options, channels=replace(options.channels, ambient_dims=2))


def train_deferred(data_dir: Path, out_dir: Path, options: DeferredTrainOptions, store: ModelStore | None,
                   progress: Progress, device: Any = "cpu") -> TrainResult:
    """Train (or resume training) a deferred renderer; see the module docstring for what is written."""
    distributed = init_distributed(device)
    device = distributed.device
    out_dir = Path(out_dir)
    bundle = load_deferred_bundle(Path(data_dir))
    options = channels_for_proxy(options, bundle)
    training, held_out = split_renders(bundle, options.hold_out)
    progress.update(0.0, "loading the base model" if options.prior == "latent-diffusion" else "building the renderer")
    renderer, state = _start_or_resume(out_dir, options, bundle.expression_names, store, device)
    broadcast_module(renderer, distributed)
    _check_sizes(renderer, options, bundle.width, bundle.height)
    dataset = DeferredDataset(data_dir, renderer.config.expression_names, bundle)
    validation = (held_out or training)[: options.validation_renders]
    optimizer = _optimizer(renderer, options)
    generator = torch.Generator().manual_seed(options.seed + distributed.rank)
    losses: list[float] = []
    step = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        losses, step = list(state["losses"]), int(state["step"])
        if distributed.is_main:
            generator.set_state(state["generator"])
        else:
            generator.manual_seed(options.seed + distributed.rank + 7919 * step)
    autocast_dtype = _autocast_dtype(options.mixed_precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)

    def snapshot() -> None:
        barrier(distributed)
        if not distributed.is_main:
            return
        save_renderer(out_dir, renderer, {"hold_out": config_to_dict(options.hold_out), "steps_trained": step,
                                          "options": config_to_dict(options)})
        save_train_state(out_dir, {"optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                                   "losses": losses, "step": step})

    progress.update(step / options.steps, f"starting training at step {step + 1} of {options.steps}")
    try:
        while step < options.steps:
            _set_learning_rates(optimizer, learning_rate_factor(options, step))
            losses.append(_train_step(renderer, dataset, training, options, optimizer, scaler, generator, autocast_dtype,
                                      distributed, lambda: stop_if_cancelled(progress, step / options.steps)))
            step += 1
            if step % options.checkpoint_every == 0 or step == options.steps:
                snapshot()
            if distributed.is_main and (step % options.validate_every == 0 or step == options.steps):
                stop_if_cancelled(progress, step / options.steps)
                write_validation(out_dir / "validation" / f"step_{step:06d}.png", renderer, dataset, validation)
            progress.update(step / options.steps, f"training step {step}/{options.steps}, loss {losses[-1]:.4f}")
    except (Cancelled, KeyboardInterrupt):
        snapshot()
        raise
    return TrainResult(out_dir, step, losses)


def _start_or_resume(out_dir: Path, options: DeferredTrainOptions, expression_names: list[str], store: ModelStore | None,
                     device: torch.device) -> tuple[DeferredRenderer, dict | None]:
    state = load_train_state(out_dir)
    if state is None:
        return build_renderer(renderer_config(options, expression_names, store), store, device), None
    config, _ = read_renderer_config(out_dir)
    if list(config.expression_names) != list(expression_names) and sorted(config.expression_names) != sorted(expression_names):
        raise InvalidInput(f"the run in {out_dir} was trained with another expression layout than this dataset's",
                           "resume with the same dataset, or train into a new --out folder", field="data")
    if config.base != options.base or config.mode != options.mode or config.prior != options.prior:
        raise InvalidInput(f"the run in {out_dir} uses prior {config.prior!r}, base {config.base!r} in mode {config.mode!r}",
                           "resume with the same --prior, --base and --mode, or train into a new --out folder", field="base")
    renderer = build_renderer(config, store, "cpu")
    load_trained_weights(renderer, load_weights(out_dir), out_dir)
    return renderer.place(device), state


def _check_sizes(renderer: DeferredRenderer, options: DeferredTrainOptions, width: int, height: int) -> None:
    """Refuse before training what would fail later: crops and validation renders the UNet cannot take."""
    multiple = renderer.size_multiple
    if options.resolution % multiple:
        raise InvalidInput(f"resolution {options.resolution} is not a multiple of {multiple}, which this renderer's UNet needs",
                           f"use e.g. {max(multiple, options.resolution // multiple * multiple)}", field="resolution")
    if width % multiple or height % multiple:
        raise InvalidInput(f"the dataset's {width}x{height} images cannot be rendered for validation and evaluation: "
                           f"width and height must be multiples of {multiple}",
                           f"render the dataset at a size divisible by {multiple}, e.g. 512x512", field="data")


def _optimizer(renderer: DeferredRenderer, options: DeferredTrainOptions) -> torch.optim.Optimizer:
    groups = renderer.trainable_parameter_groups()
    return torch.optim.AdamW([
        {"params": groups["networks"], "lr": options.network_learning_rate, "peak_lr": options.network_learning_rate,
         "weight_decay": options.weight_decay},
        {"params": groups["planes"], "lr": options.learning_rate_planes, "peak_lr": options.learning_rate_planes, "weight_decay": 0.0},
    ], betas=(0.9, 0.999), eps=1e-8)


def learning_rate_factor(options: DeferredTrainOptions, step: int) -> float:
    """The scale of every group's peak rate at 0-based ``step``: warm-up, then constant or cosine to zero."""
    if step < options.warmup_steps:
        return (step + 1) / options.warmup_steps
    if options.learning_rate_schedule == "constant":
        return 1.0
    progress = (step - options.warmup_steps) / max(1, options.steps - options.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _set_learning_rates(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("peak_lr", group["lr"]) * factor  # a train state from before schedules: its rate


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    return {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _train_step(renderer: DeferredRenderer, dataset: DeferredDataset, training: list[int], options: DeferredTrainOptions,
                optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, generator: torch.Generator,
                autocast_dtype: torch.dtype | None, distributed: DistributedContext, check_cancel: Callable[[], None]) -> float:
    """One optimizer step over ``gradient_accumulation`` micro-batches; returns this rank's mean loss.
    ``check_cancel`` runs before each micro-batch, so a cancel stops a long step at a micro-batch
    boundary (the optimizer has not stepped: the snapshot holds the steps done before)."""
    device = distributed.device
    renderer.train()
    total = 0.0
    for micro_batch in range(options.gradient_accumulation):
        if micro_batch:
            check_cancel()
        picks = torch.randint(0, len(training), (options.batch_size,), generator=generator).tolist()
        samples = [dataset.random_crop(training[pick], options.resolution, options.crop_min, generator) for pick in picks]
        conditions = ConditionTensors.stack([c for c, _ in samples]).to(device)
        targets = torch.cat([t for _, t in samples]).to(device)
        autocast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with autocast:
            loss = renderer.training_loss(conditions, targets, generator if device.type == "cpu" else None)
        scaler.scale(loss / options.gradient_accumulation).backward()
        total += loss.item() / options.gradient_accumulation
    groups = renderer.trainable_parameter_groups()
    average_gradients([*groups["networks"], *groups["planes"]], distributed)
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(groups["networks"], options.gradient_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return total


def write_validation(path: Path, renderer: DeferredRenderer, dataset: DeferredDataset, indices: list[int]) -> Path:
    """One PNG: a row per held-out render, the rendering beside its target."""
    from PIL import Image

    renderer.eval()
    rows = []
    for index in indices:
        conditions, target = dataset.full(index)
        rendered = renderer.render(conditions)
        rows.append(torch.cat([rendered.cpu(), target], dim=-1)[0])
    grid = torch.cat(rows, dim=-2)
    pixels = ((grid.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
    return atomic_write(path, lambda temp: Image.fromarray(pixels).save(temp, format="PNG"))

