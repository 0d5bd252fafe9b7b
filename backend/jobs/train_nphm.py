"""Job kind ``train-nphm``: train a neural parametric head on uploaded head meshes (a zip of the mesh folder)
or on another job's output folder. The job's output folder is the run; ``fit-nphm`` names it as ``job:<id>``.
Cancelling snapshots the run first, and the same job resumes it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..errors import InvalidInput
from .registry import MAX_TRAINING_STEPS, JobContext, JobParams, Reference, Seed, job_kind


class TrainNphmParams(JobParams):
    dataset: Reference = Field("", description="'job:<id>' whose output is a head-mesh folder; '' for the uploaded zip")
    config: Literal["tiny", "full"] = "full"
    direction: Literal["backward", "forward"] | None = None
    identity_steps: int | None = Field(None, ge=0, le=MAX_TRAINING_STEPS)
    expression_steps: int | None = Field(None, ge=0, le=MAX_TRAINING_STEPS)
    batch_size: int | None = Field(None, ge=1, le=4096)
    tick_steps: int | None = Field(None, ge=1, le=MAX_TRAINING_STEPS)
    seed: Seed | None = None


@job_kind("train-nphm", TrainNphmParams, "train a neural parametric head (NPHM) on head meshes", accepts_upload=True)
def train_nphm_job(params: TrainNphmParams, context: JobContext) -> None:
    from training.distributed import init_distributed
    from training.nphm.config import configure
    from training.nphm.dataset import mesh_folder_root
    from training.nphm.trainer import train_nphm

    if params.dataset:
        data = context.resolve(params.dataset)
    elif context.inputs_dir is not None:
        data = mesh_folder_root(context.inputs_dir)
    else:
        raise InvalidInput("no head meshes: the job has no upload and no dataset", "upload a zip of the mesh folder, or name one with dataset='job:<id>'",
                           field="dataset")
    config = configure(params.config, **params.model_dump(exclude={"dataset", "config"}))
    train_nphm(data, context.output_dir, config, context.progress, init_distributed(context.device or "cpu"))
