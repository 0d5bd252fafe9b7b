"""Stock diffusers ControlNet pipelines against our multi-view painter and deferred renderer, in the same run.

Multi-view: SD 1.5-size UNet + one SD 1.5-size ControlNet, 512², 20 DDIM steps, guidance 7.5. Stock is
``StableDiffusionControlNetPipeline`` in fp16 called with prompt strings (its defaults: SDPA attention);
ours is ``Painter`` (``avatar-foundry multiview``): bf16 where native, cached prompt embeddings, one call
per batch. Deferred: SD 2.1-size UNet + a 73-channel ControlNet, 20 steps, no guidance;
stock is the same pipeline with a 73-channel control tensor; ours is ``DeferredRenderer.render`` with the
frames batched (its extra expression cross-attention layers included, which the stock pipeline lacks).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from backend.device import inference_dtype

from .models import Sizes, build_base, build_controlnet, build_deferred_renderer, parameter_bytes
from .profiling import profile_table
from .session import Budget, Session, TimeBoxSpent, seconds_per_call, synchronize

MULTIVIEW_REFERENCE = "stock diffusers on one H100, fp16: 0.97-1.08 s/img at batch 1, 0.21-0.22 s/img at batch 8 (issue 22)"
DEFERRED_REFERENCE = "stock diffusers ControlNet on one H100, fp16: 1.36 s/frame at batch 1, 0.19 s/frame at batch 8 (issue 22)"
PROMPT = "a cartoon head, front view, best quality"
COMPILE_AT_LEAST_S = 30.0
"""A compile is not started with less time than this left in the box (it cannot be stopped half-way)."""


def stock_pipeline(base, controlnet):
    """diffusers' pipeline as it comes (cuDNN autotuning off, PyTorch's default, which our sections turn on)."""
    from diffusers import StableDiffusionControlNetPipeline

    torch.backends.cudnn.benchmark = False

    pipeline = StableDiffusionControlNetPipeline(base.vae, base.text_encoder, base.tokenizer, base.unet, controlnet,
                                                 base.scheduler, None, None, requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def ddim(base) -> None:
    """Both sides sample with DDIM (PNDM, the SD 1.5 default, adds a warm-up evaluation)."""
    from diffusers import DDIMScheduler

    base.scheduler = DDIMScheduler.from_config(base.scheduler.config)


def control_image(resolution: int):
    from PIL import Image

    return Image.new("RGB", (resolution, resolution), (40, 90, 160))


def per_image(timing: dict[str, float], batch: int) -> dict[str, Any]:
    return {"s_per_image": round(timing["s"] / batch, 4), "images_per_s": round(batch / timing["s"], 3),
            "s_per_call": round(timing["s"], 4), "iterations": timing["iterations"]}


def multiview_settings(sizes: Sizes, batch: int, kinds: tuple[str, ...] = ("pose",), compile_models: bool = False):
    from backend.multiview.generation import MultiviewSettings

    return MultiviewSettings(style="bench", base="bench", controlnets={kind: kind for kind in kinds}, steps=sizes.steps,
                             guidance=sizes.guidance, resolution=sizes.resolution, batch_size=batch, compile=compile_models)


def paint_call(painter, settings, batch: int, sizes: Sizes, controls: int = 1):
    from backend.multiview.generation import PlannedImage

    images = [PlannedImage(None, "front", i, f"images/{i}.png", i, f"{PROMPT}, style {i % 3}", "lowres") for i in range(batch)]
    image = control_image(sizes.resolution)
    return lambda: painter.paint(images, [image.seed for image in images], [[image] * batch] * controls, settings,
                                 sizes.resolution, lambda _: None)


def build_painter(sizes: Sizes, device, dtype, folder: Path, kinds: tuple[str, ...] = ("pose",), compile_models: bool = False):
    from backend.multiview.painter import Painter

    base = build_base("sd15", sizes, device, dtype, folder / "tokenizer")
    ddim(base)
    controlnets = [build_controlnet(base.unet, device, dtype, seed=index + 1) for index in range(len(kinds))]
    settings = multiview_settings(sizes, max(sizes.batches), kinds, compile_models)
    return Painter.assemble(base, controlnets, settings, device, dtype), base, controlnets


def multiview(session: Session, device, sizes: Sizes, box_s: float) -> None:
    with session.section("multiview_controlnet", box_s) as figures, tempfile.TemporaryDirectory() as folder:
        budget = session.budget(box_s)
        figures["configuration"] = (f"SD 1.5-size UNet + 1 ControlNet, {sizes.resolution}^2, {sizes.steps} DDIM steps, "
                                    f"guidance {sizes.guidance}, random weights")
        figures["reference"] = MULTIVIEW_REFERENCE
        _stock_multiview(session, figures, device, sizes, Path(folder), budget)
        dtype = inference_dtype(device)
        figures["ours_dtype"] = str(dtype).removeprefix("torch.")
        painter, _, _ = build_painter(sizes, device, dtype, Path(folder))
        for batch in sizes.batches:
            settings = multiview_settings(sizes, batch)
            session.guarded(figures, f"ours_batch{batch}", lambda: per_image(
                seconds_per_call(paint_call(painter, settings, batch, sizes), device, budget, warmup=1, iterations=3), batch))
        _ratios(figures, sizes.batches, "stock_fp16", "ours")


def _stock_multiview(session: Session, figures: dict, device, sizes: Sizes, folder: Path, budget: Budget) -> None:
    half = torch.float16 if device.type == "cuda" else torch.float32
    base = build_base("sd15", sizes, device, half, folder / "tokenizer")
    ddim(base)
    pipeline = stock_pipeline(base, build_controlnet(base.unet, device, half))
    image = control_image(sizes.resolution)
    for batch in sizes.batches:
        def call(batch=batch):
            return pipeline([PROMPT] * batch, image=image, num_inference_steps=sizes.steps, guidance_scale=sizes.guidance,
                            height=sizes.resolution, width=sizes.resolution, output_type="np")
        session.guarded(figures, f"stock_fp16_batch{batch}",
                        lambda: per_image(seconds_per_call(call, device, budget, warmup=1, iterations=3), batch))


def deferred(session: Session, device, sizes: Sizes, box_s: float) -> None:
    with session.section("deferred_renderer", box_s) as figures, tempfile.TemporaryDirectory() as folder:
        budget = session.budget(box_s)
        figures["configuration"] = (f"SD 2.1-size UNet + {sizes.deferred_condition_channels}-channel ControlNet, "
                                    f"{sizes.resolution}^2, {sizes.steps} steps, no guidance, random weights")
        figures["reference"] = DEFERRED_REFERENCE
        _stock_deferred(session, figures, device, sizes, Path(folder), budget)
        dtype = inference_dtype(device)
        figures["ours_dtype"] = str(dtype).removeprefix("torch.")
        renderer = build_deferred_renderer(sizes, device, dtype, Path(folder) / "tokenizer")
        for batch in sizes.batches:
            session.guarded(figures, f"ours_batch{batch}", lambda: per_image(
                seconds_per_call(render_call(renderer, batch, sizes), device, budget, warmup=1, iterations=3), batch))
        _ratios(figures, sizes.batches, "stock_fp16", "ours")


def _stock_deferred(session: Session, figures: dict, device, sizes: Sizes, folder: Path, budget: Budget) -> None:
    half = torch.float16 if device.type == "cuda" else torch.float32
    base = build_base("sd21-base", sizes, device, half, folder / "tokenizer")
    ddim(base)
    pipeline = stock_pipeline(base, build_controlnet(base.unet, device, half, conditioning_channels=sizes.deferred_condition_channels))
    for batch in sizes.batches:
        control = torch.rand((batch, sizes.deferred_condition_channels, sizes.resolution, sizes.resolution),
                             generator=torch.Generator().manual_seed(batch)).to(device, half)

        def call(batch=batch, control=control):
            return pipeline([""] * batch, image=control, num_inference_steps=sizes.steps, guidance_scale=1.0,
                            height=sizes.resolution, width=sizes.resolution, output_type="np")
        session.guarded(figures, f"stock_fp16_batch{batch}",
                        lambda: per_image(seconds_per_call(call, device, budget, warmup=1, iterations=3), batch))


def synthetic_conditions(batch: int, resolution: int, code_length: int):
    from backend.models.deferred.conditions import ConditionTensors

    generator = torch.Generator().manual_seed(1)
    shape = (batch, resolution, resolution)
    canonical = torch.rand((*shape, 3), generator=generator) - 0.5
    normal = torch.nn.functional.normalize(torch.randn((*shape, 3), generator=generator), dim=-1)
    return ConditionTensors(2.2 + torch.rand(shape, generator=generator), canonical, normal, torch.ones(shape),
                            torch.zeros((batch, code_length)))


def render_call(renderer, batch: int, sizes: Sizes, steps: int | None = None):
    conditions = synthetic_conditions(batch, sizes.resolution, len(renderer.config.expression_names))
    return lambda: renderer.render(conditions, steps=steps or sizes.steps)


def compiled_multiview(session: Session, device, sizes: Sizes, box_s: float) -> None:
    """Our painter with its ``compile`` setting (``multiview --compile``: the UNet), compile time apart, at the largest batch."""
    with session.section("multiview_compiled", box_s) as figures, tempfile.TemporaryDirectory() as folder:
        budget = session.budget(box_s)
        batch = max(sizes.batches)
        painter, _, _ = build_painter(sizes, device, inference_dtype(device), Path(folder), compile_models=True)
        settings = multiview_settings(sizes, batch, compile_models=True)
        session.guarded(figures, f"batch{batch}", lambda: _compiled_timing(paint_call(painter, settings, batch, sizes), device, budget, batch))


def compiled_deferred(session: Session, device, sizes: Sizes, box_s: float) -> None:
    """Our renderer with ``torch.compile`` of its UNet and ControlNet (compile time apart), at the largest batch.
    An experiment: the product does not compile the renderer."""
    with session.section("deferred_compiled", box_s) as figures, tempfile.TemporaryDirectory() as folder:
        budget = session.budget(box_s)
        batch = max(sizes.batches)
        renderer = build_deferred_renderer(sizes, device, inference_dtype(device), Path(folder) / "tokenizer")
        renderer.controlnet.compile()
        renderer.base.unet.compile()
        session.guarded(figures, f"batch{batch}", lambda: _compiled_timing(render_call(renderer, batch, sizes), device, budget, batch))


def _compiled_timing(call, device, budget: Budget, batch: int) -> dict[str, Any]:
    budget.require(COMPILE_AT_LEAST_S, "compiling")
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    first = time.perf_counter() - start
    try:
        timing = seconds_per_call(call, device, budget, warmup=1, iterations=3)
    except TimeBoxSpent as spent:  # the compile time is worth keeping even when no time is left to use it
        return {"first_call_with_compile_s": round(first, 1), "skipped": str(spent)}
    return {"first_call_with_compile_s": round(first, 1), **per_image(timing, batch)}


def memory(session: Session, device, sizes: Sizes, box_s: float) -> None:
    """Peak device memory per image: the painter (SD 1.5 + pose and depth ControlNets, our default) and the renderer."""
    with session.section("memory_per_image", box_s) as figures, tempfile.TemporaryDirectory() as folder:
        budget = session.budget(box_s)
        figures["method"] = ("torch.cuda.max_memory_allocated after reset_peak_memory_stats, around one call of "
                             "2 denoising steps + VAE decode (and of the VAE decode alone); per image = (peak - allocated before) / batch")
        dtype = inference_dtype(device)
        painter, base, controlnets = build_painter(sizes, device, dtype, Path(folder), kinds=("pose", "depth"))
        figures["multiview_model_bytes"] = parameter_bytes(base.unet, base.vae, base.text_encoder, *controlnets)
        for batch in sizes.memory_batches:
            settings = multiview_settings(sizes, batch, ("pose", "depth"))
            settings.steps = 2
            session.guarded(figures, f"multiview_batch{batch}",
                            lambda: peak_memory(paint_call(painter, settings, batch, sizes, controls=2), device, batch, budget))
            session.guarded(figures, f"vae_decode_batch{batch}",
                            lambda: peak_memory(vae_decode_call(base, batch, sizes, device, dtype), device, batch, budget))
        renderer = build_deferred_renderer(sizes, device, dtype, Path(folder) / "tokenizer", triplane_channels=16)
        figures["deferred_model_bytes"] = parameter_bytes(renderer, renderer.base.unet, renderer.base.vae)
        for batch in sizes.batches:
            session.guarded(figures, f"deferred_batch{batch}",
                            lambda: peak_memory(render_call(renderer, batch, sizes, steps=2), device, batch, budget))


def vae_decode_call(base, batch: int, sizes: Sizes, device, dtype):
    """The decode alone (the last phase of a painting call), whose peak memory_plan counts apart."""
    size = sizes.resolution // base.vae_scale_factor
    latents = torch.randn((batch, base.vae.config.latent_channels, size, size), generator=torch.Generator().manual_seed(0))
    latents = latents.to(device, dtype)

    def call():
        with torch.inference_mode():
            return base.vae.decode(latents, return_dict=False)[0]
    return call


def peak_memory(call, device, batch: int, budget: Budget) -> dict[str, Any]:
    budget.require(2.0, "memory measurement")
    call()  # warm-up: kernel selection and workspaces are not per-image costs
    if device.type != "cuda":
        return {"peak_bytes": None, "note": "no device memory counters on the CPU"}
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    call()
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {"allocated_before_bytes": before, "peak_bytes": peak, "per_image_bytes": (peak - before) // batch,
            "per_image_gib": round((peak - before) / batch / 1024 ** 3, 3)}


def profile(session: Session, device, sizes: Sizes, box_s: float) -> None:
    with session.section("profile_multiview", box_s) as figures, tempfile.TemporaryDirectory() as folder:
        dtype = inference_dtype(device)
        batch = max(sizes.batches)
        painter, _, _ = build_painter(sizes, device, dtype, Path(folder))
        settings = multiview_settings(sizes, batch)
        settings.steps = min(sizes.steps, 4)
        figures.update(profile_table(session, "profile_multiview_controlnet.txt", paint_call(painter, settings, batch, sizes), device,
                                     repeats=1, title=f"multiview painter (SD 1.5 + 1 ControlNet), batch {batch}, {settings.steps} steps, guidance {sizes.guidance}"))


def _ratios(figures: dict, batches, stock: str, ours: str) -> None:
    for batch in batches:
        before, after = figures.get(f"{stock}_batch{batch}", {}), figures.get(f"{ours}_batch{batch}", {})
        if "s_per_image" in before and "s_per_image" in after:
            figures[f"speedup_vs_stock_batch{batch}"] = round(before["s_per_image"] / after["s_per_image"], 2)
