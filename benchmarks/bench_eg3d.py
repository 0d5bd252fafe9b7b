"""EG3D generator throughput and avatar export time.

Figures:
* ``images_per_s_batch{1,8}``: full generator (512² output, neural rendering 128, 48+48 samples per
  ray), random weights, bf16 autocast on CUDA, fp32 elsewhere; seconds include mapping, tri-planes,
  rendering and super-resolution.
* ``mesh_texture_export_s``: density grid, marching cubes, decimation to 60k faces, xatlas UVs, a
  1024² baked texture and the GLB, for one avatar of the same generator.

On CPU a full-config forward takes tens of seconds, so there: one timed iteration; batch 8 switches
to the ``small`` preset (256², neural rendering 64) when batch 1 predicts more than 60 s for it; the
mesh grid is 128³ instead of 256³. The ``*_config`` entries say what was measured.
On CUDA, ``AVATAR_FOUNDRY_BENCH_COMPILE=1`` also times the generator under torch.compile.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

CPU_BATCH_LIMIT_S = 60.0


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images_per_second(generator, batch: int, device, iterations: int, warmup: int) -> float:
    import torch

    from backend.device import inference_dtype
    from blender_addon.formats.cameras import orbit_label

    dtype = inference_dtype(device)
    z = torch.randn(batch, generator.z_dim, device=device)
    c = torch.tensor([orbit_label(15.0 * i, 5.0) for i in range(batch)], dtype=torch.float32, device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        for _ in range(warmup):
            generator(z, c)
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(iterations):
            generator(z, c)
        _synchronize(device)
    return batch * iterations / (time.perf_counter() - start)


def _generator(config, device):
    import torch

    from backend.models.eg3d.generator import TriplaneGenerator

    torch.manual_seed(0)
    return TriplaneGenerator(config).to(device).eval().requires_grad_(False)


def _export_seconds(generator, device, grid_resolution: int) -> dict:
    import numpy as np

    from backend.avatars import AvatarSettings, GeneratorField, StyleRequest, export_mesh, style_code
    from backend.geometry.mesh_extraction import MeshSettings, grid_points
    from backend.geometry.texture_baking import TextureSettings
    from backend.progress import SilentProgress

    ws = style_code(generator, StyleRequest(seed=0), device)
    field = GeneratorField(generator, ws)
    # Random weights have no surface at EG3D's level 10: use the median density, which always crosses.
    level = float(np.median(field.density(grid_points(32, generator.config.box_warp))))
    settings = AvatarSettings(mesh=MeshSettings(grid_resolution=grid_resolution, level=level, max_faces=60000),
                              texture=TextureSettings(size=1024))
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        stats = export_mesh(field, settings, Path(folder) / "avatar.glb", SilentProgress())
        seconds = time.perf_counter() - start
    return {"mesh_texture_export_s": round(seconds, 2), "mesh_grid_resolution": grid_resolution,
            "mesh_faces": stats["faces"], "texture_size": 1024}


def run(device) -> dict:
    from backend.models.eg3d.generator import GeneratorConfig
    from training.eg3d.config import small_config

    on_cpu = device.type == "cpu"
    iterations, warmup = (1, 0) if on_cpu else (20, 3)
    full = _generator(GeneratorConfig(), device)
    results = {"precision": "fp32" if on_cpu else "bf16 autocast", "iterations": iterations,
               "parameters_millions": round(sum(p.numel() for p in full.parameters()) / 1e6, 2)}
    batch1 = _images_per_second(full, 1, device, iterations, warmup)
    results.update(images_per_s_batch1=round(batch1, 3), batch1_config="full (512², neural 128)")
    if on_cpu and 8 / batch1 > CPU_BATCH_LIMIT_S:
        small = _generator(small_config().generator, device)
        results.update(images_per_s_batch8=round(_images_per_second(small, 8, device, iterations, warmup), 3),
                       batch8_config="small (256², neural 64): full batch 8 would exceed 60 s on this CPU")
    else:
        results.update(images_per_s_batch8=round(_images_per_second(full, 8, device, iterations, warmup), 3),
                       batch8_config="full (512², neural 128)")
    if not on_cpu and os.environ.get("AVATAR_FOUNDRY_BENCH_COMPILE") == "1":
        import torch

        compiled = torch.compile(full)
        for batch in (1, 8):
            results[f"compiled_images_per_s_batch{batch}"] = round(_images_per_second(compiled, batch, device, iterations, warmup), 3)
    results.update(_export_seconds(full, device, 128 if on_cpu else 256))
    return results
