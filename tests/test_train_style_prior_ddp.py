"""Two CPU processes train one style prior (gloo, torchrun's environment variables): each renders its
own pairs, yet both hold identical weights afterwards, and rank 0 alone writes the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from tests.fixtures.distributed import WORLD_SIZE, free_port, join_as_rank

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def train_rank(rank: int, port: int, generator_dir: str, run_dir: str, out_dir: str) -> None:
    from backend.progress import SilentProgress
    from training.distributed import cleanup
    from training.style_prior.trainer import StylePriorTrainOptions, train_style_prior

    context = join_as_rank(rank, port)
    try:
        options = StylePriorTrainOptions(config="tiny", steps=4, batch_size=8, learning_rate=2e-3, w_statistics_samples=64,
                                         evaluation_avatars=2, snapshot_every=2)
        result = train_style_prior(Path(generator_dir), Path(run_dir), options, SilentProgress(), "cpu")
        save_file({k: v.contiguous() for k, v in result.prior.state_dict().items()}, str(Path(out_dir) / f"rank{rank}.safetensors"))
        (Path(out_dir) / f"rank{rank}.loss").write_text(repr(result.last_loss))
    finally:
        cleanup(context)


def test_two_processes_end_with_identical_priors(style_prior_generator_dir, tmp_path):
    from backend.models.style_prior.checkpoint import load_style_prior

    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    mp.start_processes(train_rank, args=(free_port(), str(style_prior_generator_dir), str(run_dir), str(out_dir)),
                       nprocs=WORLD_SIZE, join=True, start_method="spawn")
    rank0, rank1 = (load_file(str(out_dir / f"rank{r}.safetensors")) for r in range(WORLD_SIZE))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    assert (out_dir / "rank0.loss").read_text() == (out_dir / "rank1.loss").read_text()  # the loss is averaged over ranks
    saved, _ = load_style_prior(run_dir, "cpu")
    assert all(torch.equal(value, rank0[name]) for name, value in saved.state_dict().items())
