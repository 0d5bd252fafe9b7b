"""Job kind ``train-style-prior``: train the image-guided style prior for a generator job's output.

The job's output folder is the prior's run (checkpoint, train state, ``metrics.json``); image-guided
generation names it as ``job:<id>``. Cancelling snapshots the run first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .registry import MAX_TRAINING_STEPS, JobContext, JobParams, Reference, Seed, job_kind


class TrainStylePriorParams(JobParams):
    generator: Reference = Field(description="the trained generator: 'job:<id>' of a train-eg3d job or a model-store name")
    config: Literal["tiny", "small", "full"] = "small"
    encoder: Literal["conv", "clip"] = "conv"
    clip_model: Reference = Field("", description="with encoder 'clip': model-store name of a CLIP vision model folder")
    steps: int = Field(20000, ge=1, le=MAX_TRAINING_STEPS)
    batch_size: int = Field(32, ge=1, le=4096)
    pair_reuse: int = Field(1, ge=1, le=64)
    lr: float = Field(1e-4, gt=0, le=1)
    snapshot_every: int = Field(500, ge=1, le=MAX_TRAINING_STEPS)
    nearby_views: float = Field(0.5, ge=0, le=1)
    truncation_psi: float = Field(1.0, gt=0, le=1)
    seed: Seed = 0


@job_kind("train-style-prior", TrainStylePriorParams, "train the image-guided style prior (diffusion over w) for a trained generator")
def train_style_prior_job(params: TrainStylePriorParams, context: JobContext) -> None:
    from training.style_prior.pairs import PairOptions
    from training.style_prior.trainer import StylePriorTrainOptions, train_style_prior

    options = StylePriorTrainOptions(
        config=params.config, encoder=params.encoder, clip_model=params.clip_model, steps=params.steps,
        batch_size=params.batch_size, pair_reuse=params.pair_reuse, learning_rate=params.lr,
        snapshot_every=params.snapshot_every, seed=params.seed,
        pairs=PairOptions(truncation_psi=params.truncation_psi, nearby_view_probability=params.nearby_views),
    )
    train_style_prior(context.resolve(params.generator), context.output_dir, options, context.progress,
                      context.device or "cpu", context.resolve, generator_reference=params.generator)
