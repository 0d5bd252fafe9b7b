"""Job kind ``train-eg3d``: train the tri-plane GAN on a multiview job's dataset.

The job's output folder is the run (checkpoint, train state, stats, sample grids); ``generate-avatar``
and the style prior name it as ``job:<id>``. Cancelling snapshots the run first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .registry import JobContext, JobParams, Reference, Seed, job_kind

MAX_TOTAL_IMAGES = 1_000_000_000
"""Longest GAN run a job may ask for, in real images shown to D (EG3D's FFHQ run: 25 million)."""


class TrainEg3dParams(JobParams):
    dataset: Reference = Field(description="the multi-view dataset: 'job:<id>' of a multiview job or a model-store name")
    config: Literal["tiny", "small", "full"] = "small"
    total_images: int | None = Field(None, ge=1, le=MAX_TOTAL_IMAGES)
    batch_size: int | None = Field(None, ge=1, le=4096)
    r1_gamma: float | None = Field(None, ge=0, le=1000)
    pose_conditioning: Literal["coarse_to_fine", "camera", "none"] | None = None
    p_high: float | None = Field(None, ge=0, le=1)
    p_low: float | None = Field(None, ge=0, le=1)
    tick_images: int | None = Field(None, ge=1, le=MAX_TOTAL_IMAGES)
    seed: Seed | None = None


@job_kind("train-eg3d", TrainEg3dParams, "train the tri-plane 3D GAN (EG3D, coarse-to-fine D) on a multi-view dataset")
def train_eg3d_job(params: TrainEg3dParams, context: JobContext) -> None:
    from training.distributed import init_distributed
    from training.eg3d.config import configure
    from training.eg3d.trainer import train_eg3d

    options = params.model_dump(exclude={"dataset", "config"})
    config = configure(params.config, **options)
    train_eg3d(context.resolve(params.dataset), context.output_dir, config, context.progress,
               init_distributed(context.device or "cpu"))
