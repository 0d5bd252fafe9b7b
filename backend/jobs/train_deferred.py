"""Job kind ``train-deferred``: train the deferred renderer on an uploaded deferred dataset.

The job's output folder is the run: checkpoint, train state and ``validation/step_<n>.png``;
``animate`` jobs then name it as ``job:<id>``. Cancelling snapshots the run first.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..models.deferred.channels import ChannelLayout
from ..models.deferred.priors import LEARNING_RATE_SCHEDULES, PRIORS
from ..models.deferred.scratch_unet import ScratchUNetConfig, scratch_unet_with_widths
from .deferred_store import model_store
from .registry import MAX_TRAINING_STEPS, JobContext, JobParams, Name, Reference, Seed, job_kind


class TrainDeferredParams(JobParams):
    prior: Literal[PRIORS] = Field("latent-diffusion", description=(
        "'latent-diffusion': a ControlNet on a frozen Stable Diffusion base; 'none': a small UNet trained from scratch "
        "in pixel space, no base model (small images)"))
    base: Reference = Field("", description="model-store name of the frozen Stable Diffusion 1.x/2.x base ('': the only one "
                                            "registered; must stay '' with prior 'none')")
    scratch_widths: list[Annotated[int, Field(ge=8, le=1024)]] = Field(default_factory=lambda: list(ScratchUNetConfig().block_out_channels), min_length=1, max_length=6,
                                      description="prior 'none': the from-scratch UNet's channel widths, one per level")
    expression_in_time_embedding: bool = Field(False, description=(
        "prior 'none': the expression code also shifts every residual block through the timestep embedding (for proxies "
        "that do not show the expression)"))
    mode: Literal["diffusion", "direct"] = "diffusion"
    steps: int = Field(100_000, ge=1, le=MAX_TRAINING_STEPS)
    batch_size: int = Field(8, ge=1, le=256)
    grad_accum: int = Field(1, ge=1, le=1024)
    resolution: int = Field(512, ge=8, le=2048)
    lr: float | None = Field(None, gt=0, le=1, description="the networks' learning rate (None: 1e-4 on a latent-diffusion prior, 1e-3 from scratch)")
    lr_schedule: Literal[LEARNING_RATE_SCHEDULES] = "constant"
    warmup_steps: int = Field(0, ge=0, le=MAX_TRAINING_STEPS)
    lr_planes: float = Field(1e-2, gt=0, le=10)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    checkpoint_every: int = Field(1000, ge=1, le=MAX_TRAINING_STEPS)
    validate_every: int = Field(1000, ge=1, le=MAX_TRAINING_STEPS)
    holdout_views: list[Name] = Field(default_factory=list, max_length=1024)
    holdout_frame_stride: int = Field(0, ge=0, le=1_000_000)
    triplane_resolution: int = Field(512, ge=2, le=4096)
    triplane_channels: int = Field(16, ge=0, le=128)
    prediction_type: Literal["auto", "epsilon", "v_prediction"] = "auto"
    zero_terminal_snr: bool | None = Field(None, description="zero-terminal-SNR schedule (None: on for v-prediction bases)")
    steps_inference: int = Field(20, ge=1, le=1000)
    seed: Seed = 181998


@job_kind("train-deferred", TrainDeferredParams, "train the deferred diffusion renderer on an uploaded deferred dataset",
          requires_upload=True)
def train_deferred_job(params: TrainDeferredParams, context: JobContext) -> None:
    from training.deferred.dataset import HoldOut
    from training.deferred.trainer import DeferredTrainOptions, train_deferred

    store = model_store(context)
    options = DeferredTrainOptions(
        base=store.pick(params.base, "base", "base") if params.prior == "latent-diffusion" else params.base, prior=params.prior,
        scratch_unet=scratch_unet_with_widths(params.scratch_widths, params.expression_in_time_embedding), mode=params.mode, resolution=params.resolution, steps=params.steps, batch_size=params.batch_size,
        gradient_accumulation=params.grad_accum, learning_rate_networks=params.lr, learning_rate_planes=params.lr_planes,
        learning_rate_schedule=params.lr_schedule, warmup_steps=params.warmup_steps,
        mixed_precision=params.mixed_precision, checkpoint_every=params.checkpoint_every, validate_every=params.validate_every,
        hold_out=HoldOut(tuple(params.holdout_views), params.holdout_frame_stride),
        channels=ChannelLayout(triplane_channels=params.triplane_channels), triplane_resolution=params.triplane_resolution,
        prediction_type=params.prediction_type, zero_terminal_snr=params.zero_terminal_snr,
        num_inference_steps=params.steps_inference, seed=params.seed,
    )
    train_deferred(context.inputs_dir, context.output_dir, options, store, context.progress, context.device or "cpu")
