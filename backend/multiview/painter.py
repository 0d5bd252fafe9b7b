"""The loaded diffusion models of a multi-view run and one batched sampling call.

Speed choices, each measured by ``benchmarks/bench_multiview.py``: the whole batch goes through
one pipeline call; text embeddings are computed once per distinct prompt (candidates of one image
share them); bf16 (or fp16) weights on CUDA; scaled-dot-product attention in every attention
layer; ``torch.compile`` of the UNet when asked. Not channels-last: in the profile of GPU run 1
(benchmarks/RESULTS.md, an H200) 960 ``contiguous()`` copies of channels-last activations took
111 ms of a batch-of-8 call's 427 ms of GPU time, more than the 85 ms of the convolutions.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..device import free_memory_bytes, inference_dtype, pick_device
from ..errors import OutOfMemory
from ..memory_plan import MemoryPlan, free_bytes_before_models, plan_memory
from ..models.diffusion_loading import BaseComponents, load_base_components, load_base_scheduler, load_controlnet
from ..models.lora_files import apply_style_lora
from ..models.store import ModelEntry
from ..models.textual_inversion import load_embeddings, prompt_for_embeddings

EMBEDDING_CACHE_SIZE = 256
EMBEDDING_KEY_PREFIX = "embedding:"
"""Model entries of textual-inversion embeddings are keyed ``embedding:<name>``."""


def painter_cache_key(entries: dict[str, ModelEntry], settings, device) -> tuple:
    """Everything that changes the loaded pipeline; the first element names the cache slot. The
    ControlNets keep their order: it is the order in which the pipeline pairs them with images."""
    return ("multiview-pipeline", tuple((k, str(e.path)) for k, e in entries.items()), settings.lora_scale,
            settings.scheduler, settings.precision, settings.compile, settings.memory, str(device))


def resolve_dtype(precision: str, device) -> Any:
    import torch

    if precision == "auto":
        return inference_dtype(device)
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


@dataclass
class Painter:
    pipeline: Any
    base: BaseComponents
    device: Any
    dtype: Any
    warnings: list[str] = field(default_factory=list)
    """What the user should know about the loaded models (a LoRA that only partly fits)."""
    _embeddings: OrderedDict[tuple[str, str | None], tuple[Any, Any]] = field(default_factory=OrderedDict)

    @property
    def native_resolution(self) -> int:
        return self.base.default_image_size

    @classmethod
    def load(cls, entries: dict[str, ModelEntry], settings, device=None) -> "Painter":
        """Load on the CPU; ``assemble`` moves the models to ``device`` as the memory plan says."""
        device = device or pick_device()
        dtype = resolve_dtype(settings.precision, device)
        base = load_base_components(entries["base"], "cpu", dtype, vae=entries.get("vae"))
        controlnets = [load_controlnet(entries[kind], "cpu", dtype, base=base) for kind in settings.controlnets]
        if settings.scheduler:
            base.scheduler = load_base_scheduler(entries["base"], settings.scheduler)
        lora = str(entries["lora"].path) if "lora" in entries else None
        embeddings = [entry for key, entry in entries.items() if key.startswith(EMBEDDING_KEY_PREFIX)]
        return cls.assemble(base, controlnets, settings, device, dtype, lora, embeddings)

    @classmethod
    def assemble(cls, base: BaseComponents, controlnets: list, settings, device, dtype, lora: str | None = None,
                 embeddings: list[ModelEntry] = ()) -> "Painter":
        """The pipeline over loaded models (in ``dtype``, on the CPU or already on ``device``), tuned for speed."""
        import torch
        from diffusers import MultiControlNetModel, StableDiffusionControlNetPipeline
        from diffusers.models.attention_processor import AttnProcessor2_0

        pipeline = StableDiffusionControlNetPipeline(
            vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet, scheduler=base.scheduler,
            controlnet=controlnets[0] if len(controlnets) == 1 else MultiControlNetModel(controlnets),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        pipeline.set_progress_bar_config(disable=True)
        load_embeddings(pipeline, list(embeddings))
        warnings = []
        if lora:
            fit = apply_style_lora(pipeline, Path(lora), settings.lora_scale)
            if fit.partial:
                warnings.append(f"{fit.describe(Path(lora).name)}; the others change nothing (a LoRA for another model version?)")
        for module in [base.unet, *controlnets]:
            module.set_attn_processor(AttnProcessor2_0())
        if settings.compile:
            pipeline.unet = torch.compile(pipeline.unet)
        apply_memory_plan(pipeline, base, controlnets, settings, torch.device(device))
        return cls(pipeline, base, torch.device(device), dtype, warnings)

    def cut_prompts(self, prompts: list[str]) -> list[tuple[str, str]]:
        """(prompt, the words CLIP's text encoder never sees) for each distinct prompt longer than
        the tokenizer's window (77 tokens for SD 1.x/2.x): the pipeline silently encodes only the start."""
        tokenizer = self.pipeline.tokenizer
        if tokenizer is None:
            return []
        limit = tokenizer.model_max_length
        cut = []
        for prompt in dict.fromkeys(prompts):
            ids = tokenizer(prompt, truncation=False).input_ids
            if len(ids) > limit:
                cut.append((prompt, tokenizer.decode(ids[limit - 1:-1]).strip()))
        return cut

    def embeddings(self, prompt: str, negative_prompt: str, guidance: float) -> tuple[Any, Any]:
        """(prompt, negative) embeddings of one image, computed once per distinct prompt pair. The
        most recent pairs are kept (candidates of an image and repeated prompts reuse them); the
        bound keeps a long run with unique attribute prompts from filling the device."""
        key = (prompt, negative_prompt if guidance > 1 else None)
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
        else:
            self._embeddings[key] = self.pipeline.encode_prompt(prompt_for_embeddings(prompt), self.device, 1, guidance > 1,
                                                                negative_prompt=prompt_for_embeddings(negative_prompt))
            while len(self._embeddings) > EMBEDDING_CACHE_SIZE:
                self._embeddings.popitem(last=False)
        return self._embeddings[key]

    def paint(self, images, seeds: list[int], controls: list[list[Any]], settings, resolution: int,
              on_step: Callable[[float], None]) -> list[Any]:
        """One batched call: ``controls[k][i]`` is control k's image for batch entry i. Returns float
        RGB arrays in [0, 1]. ``on_step`` gets the fraction of steps done (it may raise Cancelled)."""
        import torch

        pairs = [self.embeddings(image.prompt, image.negative_prompt, settings.guidance) for image in images]
        positive = torch.cat([pair[0] for pair in pairs])
        negative = torch.cat([pair[1] for pair in pairs]) if settings.guidance > 1 else None
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
        weights = [settings.weight(kind) for kind in settings.controlnets]
        single = len(controls) == 1
        per_item = [list(item) for item in zip(*controls)]  # diffusers takes multi-control batches item-major

        def step_end(pipeline, step, timestep, callback_kwargs):
            # the pipeline's own count: PNDM's warm-up adds timesteps beyond settings.steps
            on_step(min((step + 1) / max(pipeline.num_timesteps, 1), 1.0))
            return callback_kwargs

        latents = self._initial_latents(generators, resolution)
        with torch.inference_mode():
            result = self.pipeline(
                prompt_embeds=positive, negative_prompt_embeds=negative, image=controls[0] if single else per_item,
                controlnet_conditioning_scale=weights[0] if single else weights, height=resolution, width=resolution,
                num_inference_steps=settings.steps, guidance_scale=settings.guidance, latents=latents,
                generator=generators, output_type="np", callback_on_step_end=step_end,
            )
        return list(result.images)

    def _initial_latents(self, generators, resolution: int):
        """Noise drawn on the CPU per image from its own seed: the same image for the same seed,
        whatever the batch it lands in or the device it is painted on."""
        import torch

        size = resolution // self.base.vae_scale_factor
        channels = self.base.unet.config.in_channels
        noise = [torch.randn((1, channels, size, size), generator=g, dtype=torch.float32) for g in generators]
        return torch.cat(noise).to(self.device, self.dtype)


def apply_memory_plan(pipeline, base: BaseComponents, controlnets: list, settings, device) -> MemoryPlan:
    """Place the models on ``device`` as the memory plan (``memory_plan.plan_memory``) says: all at once,
    or, with CPU offload, one at a time when needed; small-VRAM measures on CUDA only."""
    import torch

    modules = [base.unet, base.vae, base.text_encoder, *controlnets]
    plan = MemoryPlan()
    if device.type == "cuda":
        parameters = [p for module in modules for p in module.parameters()]
        model_bytes = sum(p.numel() * p.element_size() for p in parameters)
        on_device = sum(p.numel() * p.element_size() for p in parameters if p.device.type == "cuda")
        resolution = settings.resolution or base.default_image_size
        plan = plan_memory(settings.memory, free_bytes_before_models(free_memory_bytes(device), on_device), model_bytes, resolution,
                           settings.batch_size)
    if plan.cpu_offload:
        pipeline.enable_model_cpu_offload(device=device)
    else:
        try:
            for module in modules:
                module.to(device)
        except torch.OutOfMemoryError:
            raise OutOfMemory(f"the GPU has too little free memory for the models ({device})",
                              "use memory 'low' (CPU offload), or free the GPU (Free Memory)") from None
    if plan.vae_slicing:
        base.vae.enable_slicing()
    if plan.vae_tiling:
        base.vae.enable_tiling()
    return plan
