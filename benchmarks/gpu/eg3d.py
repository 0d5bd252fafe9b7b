"""EG3D generator throughput (fp32 baseline vs our optimized inference), mesh + texture export, and its profile."""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from backend.models.eg3d.inference import inference_autocast

from .models import Sizes, build_eg3d, eg3d_config
from .session import Budget, Session, seconds_per_call, synchronize

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


def throughput(session: Session, device: torch.device, sizes: Sizes, box_s: float) -> None:
    from backend.models.eg3d.inference import prepare_for_inference

    with session.section("eg3d_generator", box_s) as figures:
        budget = session.budget(box_s)
        figures["configuration"] = _describe(eg3d_config(sizes))
        figures["reference"] = REFERENCE
        baseline = build_eg3d(eg3d_config(sizes), device)
        for batch in sizes.batches:
            session.guarded(figures, f"fp32_baseline_batch{batch}",
                            lambda: images_per_second(baseline, batch, device, torch.float32, budget))
        optimized, dtype = prepare_for_inference(build_eg3d(eg3d_config(sizes), device), device)
        figures["optimized"] = f"{str(dtype).removeprefix('torch.')} autocast, channels-last, cuDNN autotuning (backend/models/eg3d/inference.py)"
        for batch in sizes.batches:
            session.guarded(figures, f"optimized_batch{batch}", lambda: images_per_second(optimized, batch, device, dtype, budget))
        _ratios(figures, sizes.batches, "fp32_baseline", "optimized")


def compiled_throughput(session: Session, device: torch.device, sizes: Sizes, box_s: float) -> None:
    """torch.compile (with CUDA graphs on CUDA: every shape is static) of the optimized generator; compile time apart."""
    from backend.models.eg3d.inference import compile_generator, prepare_for_inference

    with session.section("eg3d_generator_compiled", box_s) as figures:
        budget = session.budget(box_s)
        generator, dtype = prepare_for_inference(build_eg3d(eg3d_config(sizes), device), device)
        compiled, mode = compile_generator(generator, device)
        figures["mode"] = mode
        for batch in sizes.batches:
            session.guarded(figures, f"batch{batch}", lambda: _compiled_batch(compiled, batch, device, dtype, budget))


def _compiled_batch(compiled, batch: int, device, dtype, budget: Budget) -> dict[str, Any]:
    budget.require(COMPILE_AT_LEAST_S, "compiling")
    z, c = inputs(compiled, batch, device)
    call = forward_call(compiled, z, c, dtype)
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    compile_s = time.perf_counter() - start
    timing = seconds_per_call(call, device, budget, warmup=2, iterations=20)
    return {"compile_s": round(compile_s, 1), "images_per_s": round(batch / timing["s"], 2),
            "s_per_batch": round(timing["s"], 4), "iterations": timing["iterations"]}


def mesh_export(session: Session, device: torch.device, sizes: Sizes, box_s: float) -> None:
    """Density grid, marching cubes, decimation, xatlas UVs (CPU), texture bake and GLB for one avatar."""
    import numpy as np

    from backend.avatars import AvatarSettings, GeneratorField, StyleRequest, export_mesh, style_code
    from backend.geometry.mesh_extraction import MeshSettings, grid_points
    from backend.geometry.texture_baking import TextureSettings

    with session.section("mesh_texture_export", box_s) as figures:
        generator = build_eg3d(eg3d_config(sizes), device)
        ws = style_code(generator, StyleRequest(seed=0), device)
        field = GeneratorField(generator, ws)
        # Random weights have no surface at EG3D's level 10: the median density always crosses.
        level = float(np.median(field.density(grid_points(32, generator.config.box_warp))))
        settings = AvatarSettings(mesh=MeshSettings(grid_resolution=sizes.mesh_grid, level=level, max_faces=sizes.mesh_faces),
                                  texture=TextureSettings(size=sizes.texture_size))
        stages = StageClock()
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            stats = export_mesh(field, settings, Path(folder) / "avatar.glb", stages)
            synchronize(device)
            total = time.perf_counter() - start
        figures.update(total_s=round(total, 3), grid=sizes.mesh_grid, texture_size=sizes.texture_size, faces=stats["faces"],
                       stages_s=stages.durations(), note="xatlas (UV unwrapping) runs on the CPU")


class StageClock:
    """A Progress that records how long each reported stage took (no cancellation)."""

    def __init__(self) -> None:
        self._marks: list[tuple[str, float]] = [("start", time.perf_counter())]

    def update(self, fraction: float, stage: str) -> None:
        name = re.sub(r"[0-9/%.]+", "", stage).strip()
        if name != self._marks[-1][0]:
            self._marks.append((name, time.perf_counter()))

    def cancelled(self) -> bool:
        return False

    def durations(self) -> dict[str, float]:
        marks = self._marks + [("end", time.perf_counter())]
        spans: dict[str, float] = {}
        for (name, at), (_, after) in zip(marks[:-1], marks[1:]):
            spans[name] = round(spans.get(name, 0.0) + after - at, 3)
        return spans


def profile(session: Session, device: torch.device, sizes: Sizes, box_s: float) -> None:
    from backend.models.eg3d.inference import prepare_for_inference

    from .profiling import profile_table

    with session.section("profile_eg3d", box_s) as figures:
        generator, dtype = prepare_for_inference(build_eg3d(eg3d_config(sizes), device), device)
        batch = max(sizes.batches)
        z, c = inputs(generator, batch, device)
        call = forward_call(generator, z, c, dtype)
        figures.update(profile_table(session, "profile_eg3d_generator.txt", call, device, repeats=3,
                                     title=f"EG3D generator, optimized, batch {batch}"))


def _ratios(figures: dict, batches, baseline: str, ours: str) -> None:
    for batch in batches:
        before, after = figures.get(f"{baseline}_batch{batch}", {}), figures.get(f"{ours}_batch{batch}", {})
        if "images_per_s" in before and "images_per_s" in after:
            figures[f"speedup_batch{batch}"] = round(after["images_per_s"] / before["images_per_s"], 2)


def _describe(config) -> str:
    return (f"{config.output_resolution}^2 output, neural rendering {config.neural_rendering_resolution}, "
            f"{config.stratified_samples}+{config.importance_samples} samples per ray, planes {config.plane_resolution}^2, random weights")
