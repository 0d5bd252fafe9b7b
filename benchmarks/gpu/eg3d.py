"""EG3D generator throughput (fp32 baseline vs our optimized inference), mesh + texture export, and its profile."""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from backend.device import inference_dtype
from backend.models.eg3d.inference import inference_autocast

from .models import Sizes, build_eg3d, eg3d_config
from .session import Budget, Session, TimeBoxSpent, seconds_per_call, synchronize

REFERENCE = ("official EG3D code on one H100, fp32, its CUDA plugins failing to build (reference ops): "
             "27-43 img/s at batch 1, 80-86 img/s at batch 8 (issue 22; the official code cannot run here)")
COMPILE_AT_LEAST_S = 20.0
"""A compile is not started with less time than this left in the box (it cannot be stopped half-way)."""


def inputs(generator, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    from blender_addon.formats.cameras import orbit_label

    z = torch.randn(batch, generator.z_dim, generator=torch.Generator().manual_seed(batch)).to(device)
    c = torch.tensor([orbit_label(15.0 * i, 5.0) for i in range(batch)], dtype=torch.float32, device=device)
    return z, c


def forward_call(generator, z, c, dtype: torch.dtype):
    """One full generator forward (mapping, tri-planes, rendering, super-resolution) as our inference runs
    it (``dtype`` float32: without autocast, the baseline)."""
    autocast = inference_autocast(z.device) if dtype != torch.float32 else contextlib.nullcontext()

    def call():
        with torch.inference_mode(), autocast:
            return generator(z, c)["image"]
    return call


def images_per_second(generator, batch: int, device, dtype, budget: Budget, iterations: int = 10) -> dict[str, Any]:
    z, c = inputs(generator, batch, device)
    timing = seconds_per_call(forward_call(generator, z, c, dtype), device, budget, warmup=2, iterations=iterations)
    return {"images_per_s": round(batch / timing["s"], 2), "s_per_batch": round(timing["s"], 4),
            "iterations": timing["iterations"]}


def channels_last_experiment(generator, device):
    """Run 1's 'optimized': channels-last weights and cuDNN autotuning on CUDA (not what the product does)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        generator = generator.to(memory_format=torch.channels_last)
    return generator


def throughput(session: Session, device: torch.device, sizes: Sizes, box_s: float) -> None:
    """fp32 baseline; the product's inference (bf16 autocast on CUDA, as previews run); bf16 + channels-last."""
    with session.section("eg3d_generator", box_s) as figures:
        budget = session.budget(box_s)
        figures["configuration"] = _describe(eg3d_config(sizes))
        figures["reference"] = REFERENCE
        dtype = inference_dtype(device)
        variants = {"fp32_baseline": (build_eg3d(eg3d_config(sizes), device), torch.float32),
                    "autocast": (build_eg3d(eg3d_config(sizes), device), dtype),
                    "autocast_channels_last": (channels_last_experiment(build_eg3d(eg3d_config(sizes), device), device), dtype)}
        figures["variants"] = (f"autocast: {str(dtype).removeprefix('torch.')} autocast, as avatar previews run; "
                               "autocast_channels_last: plus channels-last weights and cuDNN autotuning (an experiment)")
        for name, (generator, variant_dtype) in variants.items():
            for batch in sizes.batches:
                session.guarded(figures, f"{name}_batch{batch}", lambda: images_per_second(generator, batch, device, variant_dtype, budget))
        for name in variants:
            _ratios(figures, sizes.batches, "fp32_baseline", name)


def compiled_throughput(session: Session, device: torch.device, sizes: Sizes, box_s: float) -> None:
    """``torch.compile`` of the generator under autocast (CUDA graphs on CUDA: every shape is static), one
    specialised graph per batch size; compile time apart. An experiment: the product does not compile it."""
    with session.section("eg3d_generator_compiled", box_s) as figures:
        budget = session.budget(box_s)
        mode = "reduce-overhead" if device.type == "cuda" else "default"
        compiled = torch.compile(build_eg3d(eg3d_config(sizes), device), mode=mode, dynamic=False)
        figures["mode"] = mode
        for batch in sizes.batches:
            session.guarded(figures, f"batch{batch}", lambda: _compiled_batch(compiled, batch, device, inference_dtype(device), budget))


def _compiled_batch(compiled, batch: int, device, dtype, budget: Budget) -> dict[str, Any]:
    budget.require(COMPILE_AT_LEAST_S, "compiling")
    z, c = inputs(compiled, batch, device)
    call = forward_call(compiled, z, c, dtype)
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    compile_s = time.perf_counter() - start
    try:
        timing = seconds_per_call(call, device, budget, warmup=2, iterations=20)
    except TimeBoxSpent as spent:  # the compile time is worth keeping even when no time is left to use it
        return {"compile_s": round(compile_s, 1), "skipped": str(spent)}
    return {"compile_s": round(compile_s, 1), "images_per_s": round(batch / timing["s"], 2),
            "s_per_batch": round(timing["s"], 4), "iterations": timing["iterations"]}


def mesh_export(session: Session, device: torch.device, sizes: Sizes, box_s: float) -> None:
    """``export_mesh`` (density grid on the device, marching cubes, largest part, decimation, xatlas UVs on the
    CPU, texture bake on the device, GLB) for a head-like sphere and for the random generator's own surface."""
    with session.section("mesh_texture_export", box_s) as figures:
        budget = session.budget(box_s)
        generator = build_eg3d(eg3d_config(sizes), device)
        figures["note"] = ("xatlas (UV unwrapping) and marching cubes run on the CPU; 'sphere_head': a smooth head-sized surface "
                           "(the generator's colours), 'random_generator': the random weights' own surface at its median density, a noise "
                           "surface far more complex than a trained head's")
        session.guarded(figures, "sphere_head", lambda: _export(SphereHead(generator, device), sizes, budget, level=SphereHead.LEVEL))
        session.guarded(figures, "random_generator", lambda: _export(_generator_field(generator, device), sizes, budget))


def _generator_field(generator, device):
    from backend.avatars import GeneratorField, StyleRequest, style_code

    return GeneratorField(generator, style_code(generator, StyleRequest(seed=0), device))


class SphereHead:
    """Density of a sphere of radius 0.3 (a head in EG3D's box), colours from the generator's field."""

    LEVEL = 10.0

    def __init__(self, generator, device) -> None:
        self._colours = _generator_field(generator, device)

    def density(self, points):
        import numpy as np

        return (self.LEVEL + 100.0 * (0.3 - np.linalg.norm(points, axis=1))).astype(np.float32)

    def color(self, points):
        return self._colours.color(points)


def _export(field, sizes: Sizes, budget: Budget, level: float | None = None) -> dict[str, Any]:
    import numpy as np

    from backend.avatars import AvatarSettings, export_mesh
    from backend.geometry.mesh_extraction import MeshSettings, grid_points
    from backend.geometry.texture_baking import TextureSettings

    budget.require(5.0, "mesh export")
    if level is None:  # random weights have no surface at EG3D's level 10: the median density always crosses
        level = float(np.median(field.density(grid_points(32, 1.0))))
    settings = AvatarSettings(mesh=MeshSettings(grid_resolution=sizes.mesh_grid, level=level, max_faces=sizes.mesh_faces),
                              texture=TextureSettings(size=sizes.texture_size))
    stages = StageClock()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        stats = export_mesh(field, settings, Path(folder) / "avatar.glb", stages)
        total = time.perf_counter() - start
    return {"total_s": round(total, 3), "grid": sizes.mesh_grid, "texture_size": sizes.texture_size, "faces": stats["faces"],
            "stages_s": stages.durations()}


class StageClock:
    """A Progress that records when each reported stage began; spans are keyed 'stage -> next stage'.
    The density grid's last batch (fraction 0.5 of export_mesh) is marked apart, so that marching cubes,
    the largest part and decimation get a span of their own."""

    def __init__(self) -> None:
        self._marks: list[tuple[str, float]] = [("start", time.perf_counter())]

    def update(self, fraction: float, stage: str) -> None:
        name = re.sub(r"[0-9/%.]+", "", stage).strip()
        if name == "density grid" and fraction >= 0.5 - 1e-9:
            name = "density grid done"
        if name != self._marks[-1][0]:
            self._marks.append((name, time.perf_counter()))

    def cancelled(self) -> bool:
        return False

    def durations(self) -> dict[str, float]:
        marks = self._marks + [("end", time.perf_counter())]
        return {f"{name} -> {after_name}": round(after - at, 3) for (name, at), (after_name, after) in zip(marks[:-1], marks[1:])}


def profile(session: Session, device: torch.device, sizes: Sizes, box_s: float) -> None:
    from .profiling import profile_table

    with session.section("profile_eg3d", box_s) as figures:
        generator = build_eg3d(eg3d_config(sizes), device)
        batch = max(sizes.batches)
        z, c = inputs(generator, batch, device)
        call = forward_call(generator, z, c, inference_dtype(device))
        figures.update(profile_table(session, "profile_eg3d_generator.txt", call, device, repeats=3,
                                     title=f"EG3D generator, autocast (as previews run), batch {batch}"))


def _ratios(figures: dict, batches, baseline: str, ours: str) -> None:
    for batch in batches:
        before, after = figures.get(f"{baseline}_batch{batch}", {}), figures.get(f"{ours}_batch{batch}", {})
        if ours != baseline and "images_per_s" in before and "images_per_s" in after:
            after["speedup_vs_fp32"] = round(after["images_per_s"] / before["images_per_s"], 2)


def _describe(config) -> str:
    return (f"{config.output_resolution}^2 output, neural rendering {config.neural_rendering_resolution}, "
            f"{config.stratified_samples}+{config.importance_samples} samples per ray, planes {config.plane_resolution}^2, random weights")
