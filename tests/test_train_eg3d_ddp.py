"""Two CPU processes train one EG3D run (gloo, torchrun's environment variables): each sees its own
data, yet both hold identical weights afterwards, so gradients really are averaged over ranks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from tests.fixtures.distributed import WORLD_SIZE, free_port, join_as_rank

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def train_rank(rank: int, port: int, data_dir: str, run_dir: str, out_dir: str) -> None:
    """One process, set up as torchrun would, running the trainer; saves its weights and losses."""
    import json

    from backend.progress import SilentProgress
    from training.distributed import cleanup
    from training.eg3d.config import tiny_config
    from training.eg3d.trainer import train_eg3d

    context = join_as_rank(rank, port)
    try:
        config = replace(tiny_config(), batch_size=4, total_images=16, tick_images=8, r1_interval=2, density_reg_interval=2)
        result = train_eg3d(data_dir, run_dir, config, SilentProgress(), context)
        weights = {f"G.{k}": v for k, v in result.generator.state_dict().items()}
        weights.update({f"D.{k}": v for k, v in result.discriminator.state_dict().items()})
        weights.update({f"G_ema.{k}": v for k, v in result.generator_ema.state_dict().items()})
        save_file({k: v.contiguous() for k, v in weights.items()}, str(Path(out_dir) / f"rank{rank}.safetensors"))
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result.ticks))
    finally:
        cleanup(context)


def test_two_processes_end_with_identical_weights(sphere_dataset, tmp_path):
    import json

    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    mp.start_processes(train_rank, args=(free_port(), str(sphere_dataset), str(run_dir), str(out_dir)),
                       nprocs=WORLD_SIZE, join=True, start_method="spawn")
    rank0, rank1 = (load_file(str(out_dir / f"rank{r}.safetensors")) for r in range(WORLD_SIZE))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    ticks0, ticks1 = (json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE))
    assert ticks0[-1]["images_seen"] == ticks1[-1]["images_seen"] == 16
    assert ticks0[0]["loss_d"] != ticks1[0]["loss_d"]  # the ranks trained on different images
    from backend.models.eg3d.generator import load_generator

    saved = load_generator(run_dir)  # rank 0 wrote the checkpoint
    assert all(torch.equal(v, rank0[f"G_ema.{k}"]) for k, v in saved.state_dict().items())
