"""Job kind ``multiview``: paint the multi-view training set from an uploaded condition bundle.

Artifacts: the dataset folder itself, ``dataset.json`` + ``images/*.png`` (+ ``generation.json``,
the settings, used to refuse resuming with different ones). Images appear one by one as they are
finished, so a cancelled or failed job keeps every finished image intact.
"""

from __future__ import annotations

from pydantic import Field

from ..multiview.generation import MultiviewSettings, choose_models, generate_multiview
from ..multiview.prompts import DEFAULT_BACK_VIEW_NEGATIVE, DEFAULT_NEGATIVE_PROMPT
from .deferred_store import model_store
from .registry import JobContext, JobParams, job_kind


class MultiviewParams(JobParams):
    style: str = Field(min_length=1, description='style prompt, e.g. "a 3D cartoon character head, Pixar style"')
    base: str = Field("", description="model-store name of the Stable Diffusion 1.x/2.x base model ('': the only one registered)")
    controlnets: dict[str, str] = Field(default_factory=lambda: {"pose": "", "depth": ""},
                                        description="control kind (pose, depth, normal) -> model-store name of its ControlNet "
                                                    "('': the only one registered for that control)")
    control_weights: dict[str, float] = Field(default_factory=dict, description="control kind -> conditioning scale (default 1.0)")
    per_view: int = Field(1, ge=1, le=1000)
    candidates: int = Field(1, ge=1, le=16, description="images painted per kept image; the best by pose confidence is kept")
    seed: int = 0
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0, le=30)
    resolution: int = Field(0, ge=0, le=2048, description="output size in pixels; 0 = the base model's native size")
    batch_size: int = Field(8, ge=1, le=64)
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    attributes_per_image: int = Field(5, ge=0, le=50)
    attributes: dict[str, list[str]] | None = Field(None, description="attribute category -> options (default: the built-in ~20 categories)")
    front_phrase: str = "front view"
    side_phrase: str = "side view"
    back_phrase: str = "back view"
    back_view_negative: str = DEFAULT_BACK_VIEW_NEGATIVE
    front_max_degrees: float | None = None
    back_min_degrees: float | None = None
    lora: str | None = Field(None, description="model-store name of a style LoRA (.safetensors)")
    lora_scale: float = 1.0
    scheduler: str | None = Field(None, description="diffusers scheduler class, e.g. UniPCMultistepScheduler (default: the model's)")
    precision: str = "auto"
    compile: bool = False


@job_kind("multiview", MultiviewParams, "paint a stylized multi-view dataset from a condition bundle (SD + ControlNet)",
          requires_upload=True)
def run_multiview(params: MultiviewParams, context: JobContext) -> None:
    store = model_store(context)
    base, controlnets = choose_models(store, params.base, params.controlnets)
    settings = MultiviewSettings(**{**params.model_dump(), "base": base, "controlnets": controlnets})
    generate_multiview(context.inputs_dir, context.output_dir, settings, store.resolve, context.progress,
                       device=context.device, models=context.models)
