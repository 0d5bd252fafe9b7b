"""How close ``backend/job_estimates.py`` comes to a real training step: peak memory and seconds
per image of one EG3D training step, measured, beside what the estimate predicts for the same step.

Figures, per measured preset and batch (``eg3d_<preset>_b<batch>_...``):
* ``measured_peak_mb`` / ``estimated_peak_mb``: CUDA's peak allocated memory (on the GPU) or the
  process's peak resident size (on the CPU), against the estimate's ``peak_bytes``;
* ``measured_s_per_image`` / ``estimated_s_per_image``: the second of two steps, per image.

On CPU the tiny preset and the small one at batch 1 are measured (a small step takes ~50 s there);
on CUDA also the small preset at batch 8 and the full one at batch 4. A ratio far from 1 means the
constants in ``job_estimates`` need the measured figures.
"""

from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def _measure(preset_name: str, batch: int, device) -> dict:
    import torch

    from backend.job_estimates import estimate_job, this_machine
    from backend.jobs.registry import get_kind
    from tests.fixtures.eg3d import write_sphere_dataset
    from training.distributed import init_distributed
    from training.eg3d.config import preset
    from training.eg3d.trainer import Eg3dTrainer

    config = preset(preset_name)
    with tempfile.TemporaryDirectory() as folder:
        dataset = write_sphere_dataset(Path(folder) / "data", resolution=config.generator.output_resolution)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        trainer = Eg3dTrainer(dataset, Path(folder) / "run", replace(config, batch_size=batch, total_images=10**6),
                              context=init_distributed(device))
        trainer.train_step()
        start = time.perf_counter()
        trainer.train_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    params = get_kind("train-eg3d").params.model_validate({"dataset": "job:0", "config": preset_name, "batch_size": batch,
                                                           "total_images": batch})
    estimate = estimate_job("train-eg3d", params, this_machine(device))
    return {"measured_peak_mb": round(peak / 2**20), "estimated_peak_mb": round(estimate.peak_bytes / 2**20),
            "measured_s_per_image": round(seconds / batch, 3), "estimated_s_per_image": round(estimate.seconds / batch, 3)}


def run(device) -> dict:
    cases = [("tiny", 8), ("small", 1)] + ([("small", 8), ("full", 4)] if device.type == "cuda" else [])
    results = {}
    for preset_name, batch in cases:
        for key, value in _measure(preset_name, batch, device).items():
            results[f"eg3d_{preset_name}_b{batch}_{key}"] = value
    return results
