"""Training steps per second of each trainer at its default preset, on synthetic data written to disk in
the real formats: EG3D (``train eg3d`` default preset ``small``), the deferred renderer (``train deferred``
defaults: batch 8, 512² crops, bf16 autocast, SD 2.1-size base) and the style prior (``train style-prior``
defaults: preset ``small``, batch 32 pairs rendered by the full generator each step).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from .models import Sizes, build_deferred_renderer, build_eg3d
from .session import Budget, Session, synchronize

SYNTHETIC_IMAGES = 16
SYNTHETIC_RENDERS = 4


def steps_per_second(step: Callable[[], Any], device, budget: Budget, warmup: int, steps: int, batch: int) -> dict[str, Any]:
    for _ in range(warmup):
        step()
    synchronize(device)
    budget.require(1.0, "timed training steps")
    start = time.perf_counter()
    done = 0
    while done < steps and (done == 0 or budget.left() > (time.perf_counter() - start) / done * 1.5):
        step()
        done += 1
    synchronize(device)
    seconds = (time.perf_counter() - start) / done
    return {"steps_per_s": round(1.0 / seconds, 3), "s_per_step": round(seconds, 4), "images_per_s": round(batch / seconds, 2),
            "batch": batch, "timed_steps": done, "warmup_steps": warmup}


def trainers(session: Session, device, sizes: Sizes, box_s: float) -> None:
    with session.section("training", box_s) as figures:
        budget = session.budget(box_s)
        session.guarded(figures, "eg3d", lambda: _eg3d(device, sizes, budget))
        session.guarded(figures, "deferred", lambda: _deferred(device, sizes, budget))
        session.guarded(figures, "style_prior", lambda: _style_prior(device, sizes, budget))


def _eg3d(device, sizes: Sizes, budget: Budget) -> dict[str, Any]:
    from training.distributed import init_distributed
    from training.eg3d.config import configure
    from training.eg3d.trainer import Eg3dTrainer

    config = configure(sizes.eg3d_preset)
    with tempfile.TemporaryDirectory() as folder:
        data = write_multiview_dataset(Path(folder) / "data", config.generator.output_resolution)
        trainer = Eg3dTrainer(data, Path(folder) / "run", config, context=init_distributed(device))
        figures = steps_per_second(trainer.train_step, device, budget, sizes.training_warmup, sizes.training_steps, config.batch_size)
    return {"preset": sizes.eg3d_preset, "note": "G and D steps; lazy R1 every 16 and density every 4 steps as scheduled", **figures}


def write_multiview_dataset(root: Path, resolution: int) -> Path:
    """Random-noise images with orbit camera labels, in the multi-view dataset format."""
    from backend.formats.multiview_dataset import MultiviewDataset, MultiviewItem, write_dataset_manifest
    from blender_addon.formats.cameras import orbit_label, view_class

    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    items = []
    for index in range(SYNTHETIC_IMAGES):
        yaw = -180.0 + index * 360.0 / SYNTHETIC_IMAGES
        name = f"images/{index:03d}.png"
        Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(root / name)
        items.append(MultiviewItem(file=name, label=orbit_label(yaw, 0.0), yaw=yaw, pitch=0.0, view_class=view_class(yaw)))
    write_dataset_manifest(root, MultiviewDataset(resolution=resolution, items=items, style="noise"))
    return root


def _deferred(device, sizes: Sizes, budget: Budget) -> dict[str, Any]:
    from training.deferred.dataset import DeferredDataset, load_deferred_bundle
    from training.deferred.trainer import DeferredTrainOptions, _autocast_dtype, _optimizer, _train_step
    from training.distributed import init_distributed

    options = DeferredTrainOptions(base="sd21-size-random")
    if sizes.tiny:
        options = DeferredTrainOptions(base="sd21-size-random", batch_size=2, resolution=sizes.resolution)
    with tempfile.TemporaryDirectory() as folder:
        renderer = build_deferred_renderer(sizes, device, torch.float32, Path(folder) / "tokenizer",
                                           triplane_channels=options.channels.triplane_channels)
        data = write_deferred_bundle(Path(folder) / "data", options.resolution, renderer.config.expression_names)
        dataset = DeferredDataset(data, renderer.config.expression_names, load_deferred_bundle(data))
        optimizer = _optimizer(renderer, options)
        autocast = _autocast_dtype(options.mixed_precision, device)
        scaler = torch.amp.GradScaler(device.type, enabled=autocast == torch.float16)
        generator = torch.Generator().manual_seed(0)
        context = init_distributed(device)
        training = list(range(len(dataset)))

        def step() -> float:
            return _train_step(renderer, dataset, training, options, optimizer, scaler, generator, autocast, context, lambda: None)
        figures = steps_per_second(step, device, budget, sizes.training_warmup, sizes.training_steps, options.batch_size)
    return {"options": f"batch {options.batch_size}, {options.resolution}^2 crops, mixed precision {options.mixed_precision} "
                       f"({str(autocast).removeprefix('torch.')}), SD 2.1-size base", **figures}


def write_deferred_bundle(root: Path, size: int, expression_names: tuple[str, ...]) -> Path:
    """A condition bundle of random proxy passes (a disc mask) with targets, in the documented format."""
    from blender_addon.formats.cameras import HeadFrame, orbit_label, view_class
    from blender_addon.formats.condition_bundle import ConditionBundle, Frame, Render, View, default_pass_paths, write_bundle_manifest

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    mask = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (0.4 * size) ** 2)
    views = [View(f"cam{i}", orbit_label(yaw, 0.0), yaw, 0.0, view_class(yaw)) for i, yaw in enumerate((-30.0, 30.0))]
    frames = [Frame(index, [0.1 * index] * len(expression_names)) for index in range(SYNTHETIC_RENDERS // len(views))]
    renders = []
    for view in views:
        for frame in frames:
            paths = default_pass_paths(view.id, frame.index, ("depth", "normal", "canonical", "mask", "target"))
            arrays = {"depth": np.where(mask, 2.5, 0).astype(np.float32),
                      "normal": (rng.standard_normal((size, size, 3)) * mask[..., None]).astype(np.float32),
                      "canonical": ((rng.random((size, size, 3)) - 0.5) * mask[..., None]).astype(np.float32),
                      "mask": (mask * 255).astype(np.uint8), "target": rng.integers(0, 256, (size, size, 3), dtype=np.uint8)}
            for name, relative in paths.items():
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                if relative.endswith(".npy"):
                    np.save(root / relative, arrays[name])
                else:
                    Image.fromarray(arrays[name]).save(root / relative)
            renders.append(Render(view.id, frame.index, paths))
    write_bundle_manifest(root, ConditionBundle(size, size, HeadFrame(), views, frames, renders, list(expression_names), {"generator": "benchmark"}))
    return root


def _style_prior(device, sizes: Sizes, budget: Budget) -> dict[str, Any]:
    from training.style_prior.pairs import make_pairs
    from training.style_prior.trainer import StylePriorTrainOptions, _start_or_resume

    from .models import eg3d_config

    options = StylePriorTrainOptions(config=sizes.style_prior_preset, batch_size=4 if sizes.tiny else 32,
                                     w_statistics_samples=256 if sizes.tiny else 10000)
    generator = build_eg3d(eg3d_config(sizes), device)
    with tempfile.TemporaryDirectory() as folder:
        prior, _, _ = _start_or_resume(generator, Path(folder), options, device, Path)
    prior.train()
    optimizer = torch.optim.AdamW([p for p in prior.parameters() if p.requires_grad], lr=options.learning_rate,
                                  weight_decay=options.weight_decay)
    rng = torch.Generator().manual_seed(0)

    def step() -> None:
        w, images = make_pairs(generator, options.batch_size, options.pairs, rng, device)
        loss = prior.training_loss(w, images, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    figures = steps_per_second(step, device, budget, sizes.training_warmup, sizes.training_steps, options.batch_size)
    return {"preset": options.config, "note": "pairs rendered by the full generator every step (pair_reuse 1, the default)", **figures}
