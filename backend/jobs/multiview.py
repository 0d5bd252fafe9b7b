"""Job kind ``multiview``: paint the multi-view training set from an uploaded condition bundle.

Artifacts: the dataset folder itself, ``dataset.json`` + ``images/*.png`` (+ ``generation.json``,
the settings, used to refuse resuming with different ones). Images appear one by one as they are
finished, so a cancelled or failed job keeps every finished image intact.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..multiview.generation import MultiviewSettings, choose_models, embeddings_in_prompts, generate_multiview
from ..multiview.prompts import DEFAULT_BACK_VIEW_NEGATIVE, DEFAULT_NEGATIVE_PROMPT
from .deferred_store import model_store
from .registry import JobContext, JobParams, Name, Prompt, Reference, Seed, job_kind


class MultiviewParams(JobParams):
    style: Prompt = Field(min_length=1, description='style prompt, e.g. "a 3D cartoon character head, Pixar style"')
    base: Reference = Field("", description="model-store name of the Stable Diffusion 1.x/2.x base model ('': the only one registered)")
    controlnets: dict[Name, Reference] = Field(default_factory=lambda: {"pose": "", "depth": ""}, max_length=16,
                                        description="control kind (pose, depth, normal) -> model-store name of its ControlNet "
                                                    "('': the only one registered for that control)")
    control_weights: dict[Name, Annotated[float, Field(ge=0, le=10)]] = Field(default_factory=dict, max_length=16, description="control kind -> conditioning scale (default 1.0)")
    per_view: int = Field(1, ge=1, le=1000)
    candidates: int = Field(1, ge=1, le=16, description="images painted per kept image; the best by pose confidence is kept")
    seed: Seed = 0
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0, le=30)
    resolution: int = Field(0, ge=0, le=2048, description="output size in pixels; 0 = the base model's native size")
    batch_size: int = Field(8, ge=1, le=64)
    negative_prompt: Prompt = DEFAULT_NEGATIVE_PROMPT
    attributes_per_image: int = Field(5, ge=0, le=50)
    attributes: dict[Name, Annotated[list[Prompt], Field(max_length=1000)]] | None = Field(None, max_length=200, description="attribute category -> options (default: the built-in ~20 categories)")
    front_phrase: Prompt = "front view"
    side_phrase: Prompt = "side view"
    back_phrase: Prompt = "back view"
    back_view_negative: Prompt = DEFAULT_BACK_VIEW_NEGATIVE
    front_max_degrees: float | None = Field(None, ge=0, le=180)
    back_min_degrees: float | None = Field(None, ge=0, le=180)
    lora: Reference | None = Field(None, description="model-store name of a style LoRA (.safetensors)")
    lora_scale: float = Field(1.0, ge=-10, le=10)
    vae: Reference | None = Field(None, description="model-store name of a VAE to decode with (default: the base model's own)")
    scheduler: Name | None = Field(None, description="diffusers scheduler class, e.g. UniPCMultistepScheduler (default: the model's)")
    precision: Name = "auto"
    compile: bool = False
    memory: Literal["auto", "full", "low"] = Field("auto", description="small-VRAM mode: auto (from free memory), full or low")
    background: Literal["black", "white", "keep"] = Field("black", description="matte the painted images onto the 3D GAN's "
                                                          "background colour with the head mask, or keep SD's background")


@job_kind("multiview", MultiviewParams, "paint a stylized multi-view dataset from a condition bundle (SD + ControlNet)",
          requires_upload=True)
def run_multiview(params: MultiviewParams, context: JobContext) -> None:
    store = model_store(context)
    base, controlnets = choose_models(store, params.base, params.controlnets)
    settings = MultiviewSettings(**{**params.model_dump(), "base": base, "controlnets": controlnets})
    settings.embeddings = embeddings_in_prompts(store, settings)
    generate_multiview(context.inputs_dir, context.output_dir, settings, store.resolve, context.progress,
                       device=context.device, models=context.models)
