"""Image-guided avatars: seconds from a reference image to ``avatar.glb``.

The path measured is the one ``generate --style-prior RUN --image REF`` takes: read and check the
image, encode it, sample w with the style prior (DDIM, 25 steps, guidance 1.5), then the generator's
previews (6 views), density grid, marching cubes, UV unwrap, texture bake and GLB. Weights are
random (nothing can be downloaded), which does not change the arithmetic; because a random
generator has no surface at EG3D's level 10, the mesh level is set to the 90th percentile of the
density on a coarse grid so that a surface exists.

On a GPU: the full generator (512 output, neural rendering 128), the full prior (512-d w, conv
encoder at 128), mesh grid 256, texture 1024. On a CPU that takes many minutes, so it measures the
tiny generator and prior with grid 64 and texture 256; the ``setting`` key says which was measured.
The pipeline runs twice: ``first_run_s`` includes one-time costs (kernel selection, allocations),
``reference_to_glb_s`` is the second, warm run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from backend.avatars import AvatarSettings, StyleRequest, generate_avatar
from backend.geometry.mesh_extraction import MeshSettings
from backend.geometry.texture_baking import TextureSettings
from backend.models.eg3d.generator import GeneratorConfig, TriplaneGenerator, tiny_generator_config
from backend.models.style_prior.config import preset
from backend.models.style_prior.image_guidance import ImageGuidance, predict_w
from backend.models.style_prior.prior import StylePrior
from training.style_prior.pairs import w_statistics

COARSE_GRID = 24


def run(device: torch.device) -> dict:
    on_gpu = device.type == "cuda"
    torch.manual_seed(0)
    generator = TriplaneGenerator(GeneratorConfig() if on_gpu else tiny_generator_config()).to(device).eval().requires_grad_(False)
    prior = StylePrior(preset("full" if on_gpu else "tiny", w_dim=generator.config.w_dim)).to(device).eval()
    prior.set_w_statistics(*w_statistics(generator, 4096, torch.Generator().manual_seed(1), device))
    mesh = MeshSettings(grid_resolution=256 if on_gpu else 64, level=_density_percentile(generator, device, 90.0))
    texture = TextureSettings(size=1024 if on_gpu else 256)
    with tempfile.TemporaryDirectory() as folder:
        reference = _reference_image(Path(folder) / "reference.png")
        first = _reference_to_glb(generator, prior, reference, mesh, texture, Path(folder) / "first")
        warm = _reference_to_glb(generator, prior, reference, mesh, texture, Path(folder) / "warm")
    return {
        "setting": "full generator + full prior, grid 256, texture 1024" if on_gpu else "tiny generator + tiny prior, grid 64, texture 256",
        "first_run_s": round(first["total_s"], 3),
        "reference_to_glb_s": round(warm["total_s"], 3),
        "reference_to_w_s": round(warm["w_s"], 3),
        "w_to_glb_s": round(warm["total_s"] - warm["w_s"], 3),
        "faces": warm["faces"],
    }


def _reference_to_glb(generator, prior, reference: Path, mesh: MeshSettings, texture: TextureSettings, out: Path) -> dict:
    _synchronize()
    start = time.perf_counter()
    style = predict_w(prior, ImageGuidance("benchmark", str(reference)), reference)
    _synchronize()
    w_seconds = time.perf_counter() - start
    settings = AvatarSettings(style=StyleRequest(w=style.w.tolist(), truncation_psi=1.0), mesh=mesh, texture=texture)
    document = generate_avatar(generator, settings, out)
    _synchronize()
    total = time.perf_counter() - start
    assert (out / "avatar.glb").is_file()
    return {"total_s": total, "w_s": w_seconds, "faces": document["mesh"]["faces"]}


def _reference_image(path: Path) -> Path:
    """A 512x512 RGBA concept image: a coloured disc on a transparent background."""
    yy, xx = np.mgrid[0:512, 0:512]
    inside = (xx - 256) ** 2 + (yy - 240) ** 2 < 180 ** 2
    rgba = np.zeros((512, 512, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 230, 170, 120
    rgba[..., 3] = inside * 255
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def _density_percentile(generator, device, percentile: float) -> float:
    from backend.avatars import GeneratorField
    from backend.geometry.mesh_extraction import grid_points

    ws = generator.mapping(torch.randn(1, generator.config.z_dim, device=device))
    density = GeneratorField(generator, ws).density(grid_points(COARSE_GRID, 1.0))
    return float(np.percentile(density, percentile))


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
