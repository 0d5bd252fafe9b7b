"""Job kind ``fit-nphm``: track a neural head to per-frame geometry (an uploaded zip of per-frame meshes, point
clouds or a capture folder, or another job's output), writing ``fit.json`` (+ ``proxy/`` meshes when asked).
Cancelling keeps the frames fitted so far; the same job resumes after them."""

from __future__ import annotations

from pydantic import Field

from ..errors import InvalidInput
from .registry import MAX_TRAINING_STEPS, JobContext, JobParams, Reference, Seed, job_kind


class FitNphmParams(JobParams):
    model: Reference = Field(description="'job:<id>' of a train-nphm job, or a model-store name of role nphm")
    targets: Reference = Field("", description="'job:<id>' whose output holds the frames; '' for the uploaded zip")
    identity_frames: int = Field(1, ge=1, le=10_000)
    identity_steps: int = Field(400, ge=1, le=MAX_TRAINING_STEPS)
    frame_steps: int = Field(100, ge=1, le=MAX_TRAINING_STEPS)
    points_per_step: int = Field(1000, ge=16, le=1_000_000)
    mm_per_unit: float = Field(1000.0, gt=0, le=1e9)
    proxy_resolution: int = Field(0, ge=0, le=1024, description="grid resolution of per-frame proxy meshes (0: none)")
    seed: Seed = 0


@job_kind("fit-nphm", FitNphmParams, "fit a neural parametric head to per-frame geometry (tracking)", accepts_upload=True)
def fit_nphm_job(params: FitNphmParams, context: JobContext) -> None:
    from ..models.nphm.fitting import FitSettings
    from ..models.nphm.model import load_head
    from ..models.nphm.proxy_export import export_proxies
    from ..models.nphm.tracking_run import fit_nphm
    from ..progress import ScaledProgress
    from training.nphm.dataset import mesh_folder_root

    if params.targets:
        targets = context.resolve(params.targets)
    elif context.inputs_dir is not None:
        targets = mesh_folder_root(context.inputs_dir)
    else:
        raise InvalidInput("no target frames: the job has no upload and no targets", "upload a zip of the per-frame meshes, or name them with targets='job:<id>'",
                           field="targets")
    model_dir = context.resolve(params.model)
    device = context.device or "cpu"
    settings = FitSettings(identity_frames=params.identity_frames, identity_steps=params.identity_steps, frame_steps=params.frame_steps,
                           points_per_step=params.points_per_step, mm_per_unit=params.mm_per_unit, seed=params.seed)
    fitting_share = 0.8 if params.proxy_resolution else 1.0
    result = fit_nphm(model_dir, targets, context.output_dir, settings, ScaledProgress(context.progress, 0.0, fitting_share), device=device)
    if params.proxy_resolution:
        export_proxies(load_head(model_dir, device), result, context.output_dir / "proxy", params.proxy_resolution,
                       ScaledProgress(context.progress, fitting_share, 1.0))
