"""Job kind ``animate``: bake an uploaded animation bundle through a trained deferred renderer (by default the
embedded one, which knows the demo head).

Artifacts: ``frames/<view>_f<frame>.png`` and ``frames.json`` (see backend/models/deferred/baking.py),
which the add-on imports as an image sequence. The renderer stays loaded between jobs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..models.store import ModelStore
from .deferred_store import model_store
from .registry import JobContext, JobParams, Reference, job_kind


class AnimateParams(JobParams):
    checkpoint: Reference | None = Field(None, description="the trained run: 'job:<id>' of a train-deferred job "
                                                           "(none: the embedded default renderer, trained on the demo head)")
    batch_size: int | None = Field(None, ge=1, le=64, description="frames per batch (default 8 on a GPU, 2 on the CPU)")
    fps: float | None = Field(None, gt=0, le=1000, description="frame rate for frames.json (default: the bundle's, else 24)")


def base_model_store(context: JobContext, checkpoint_dir: Path) -> ModelStore | None:
    """The model store for a renderer on a frozen base; None for one trained from scratch (it holds every weight)."""
    from ..models.deferred.checkpoint import read_renderer_config

    config, _ = read_renderer_config(checkpoint_dir)
    return None if config.prior == "none" else model_store(context)


@job_kind("animate", AnimateParams, "render every frame of an uploaded condition bundle with a trained deferred renderer",
          requires_upload=True)
def animate_job(params: AnimateParams, context: JobContext) -> None:
    from blender_addon.formats.notices import write_notices

    from ..commands.animate import default_batch_size
    from ..default_models import DEFAULT_RENDERER_NOTICE, default_renderer
    from ..device import inference_dtype, pick_device
    from ..models.deferred.baking import bake_animation
    from ..models.deferred.checkpoint import load_renderer

    device = context.device or pick_device()
    dtype = inference_dtype(device)
    checkpoint_dir = context.resolve(params.checkpoint) if params.checkpoint else default_renderer()
    context.progress.update(0.0, "loading the renderer")
    renderer = context.models.get(("deferred-renderer", str(checkpoint_dir), str(device), str(dtype)),
                                  lambda: load_renderer(checkpoint_dir, base_model_store(context, checkpoint_dir), device, dtype))
    bake_animation(renderer, checkpoint_dir, context.inputs_dir, context.output_dir, context.progress,
                   params.batch_size or default_batch_size(device), params.fps)
    if not params.checkpoint:
        write_notices(context.output_dir, [DEFAULT_RENDERER_NOTICE])
