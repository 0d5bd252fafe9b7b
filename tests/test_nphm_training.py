"""Training an NPHM on the artist's own head meshes: the identity stage learns each neutral head's surface,
the expression stage learns the posed heads' exact correspondences; runs resume, can be cancelled, refuse
bad folders by name, and two torchrun processes stay identical."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from backend.errors import Cancelled, InvalidInput
from backend.models.nphm.model import load_head
from backend.progress import SilentProgress
from tests.fixtures.distributed import WORLD_SIZE, free_port, join_as_rank
from tests.fixtures.nphm_heads import HEAD_RADII, write_head, write_head_folder
from training.nphm.config import tiny_config
from training.nphm.dataset import HeadMeshDataset
from training.nphm.trainer import train_nphm

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _codes(run):
    from safetensors.torch import load_file

    return load_file(str(run / "latents.safetensors"))


def test_trained_identity_sdf_has_each_neutral_head_as_its_zero_level_set(trained_nphm, nphm_heads):
    """On each subject's neutral surface the SDF is near 0 (under 1% of the head's height), inside the head it is
    negative and outside positive; the anchors it predicts stay mirror images in pairs."""
    head = load_head(trained_nphm)
    codes = _codes(trained_nphm)["identity"]
    dataset = HeadMeshDataset(nphm_heads, head.config.box_min, head.config.box_max, 400, 0.01, seed=5)
    height = float(np.ptp(dataset.neutral_vertices()[0][:, 1]))
    for index, pool in enumerate(dataset.surfaces):
        latent = codes[index:index + 1]
        surface = torch.cat([pool.points, torch.zeros(len(pool.points), 2)], -1)[None]
        centre = pool.points.mean(0)
        inside = torch.cat([centre + (pool.points - centre) * 0.6, torch.zeros(len(pool.points), 2)], -1)[None]
        outside = torch.cat([centre + (pool.points - centre) * 1.25, torch.zeros(len(pool.points), 2)], -1)[None]
        with torch.no_grad():
            assert head.canonical_sdf(surface, latent).abs().mean() < 0.01 * height
            assert (head.canonical_sdf(inside, latent) < 0).float().mean() > 0.95
            assert (head.canonical_sdf(outside, latent) > 0).float().mean() > 0.95
            anchors = head.identity.anchors(latent)[0]
        pairs = head.config.identity.symmetric_pairs
        mirrored = anchors[1:2 * pairs:2] * torch.tensor([-1.0, 1.0, 1.0])
        assert torch.allclose(anchors[0:2 * pairs:2], mirrored, atol=0.02 * height)


def test_trained_backward_deformation_maps_posed_points_back_to_their_neutral_points(trained_nphm, nphm_heads):
    """With the expression code learnt for a posed head, posed surface points map to their corresponding neutral
    points far better than leaving them where they are (each posed head, and all together), and the zero code
    leaves the neutral where it is."""
    head = load_head(trained_nphm)
    codes = _codes(trained_nphm)
    dataset = HeadMeshDataset(nphm_heads, head.config.box_min, head.config.box_max, 400, 0.01, seed=6)
    errors, displacements = [], []
    for index, pool in enumerate(dataset.correspondences):
        identity, expression = codes["identity"][pool.subject:pool.subject + 1], codes["expression"][index:index + 1]
        with torch.no_grad():
            canonical, ambient = head.canonicalise(pool.posed[None], identity, expression)
            rest, _ = head.canonicalise(pool.neutral[None], identity, torch.zeros_like(expression))
        untouched = (pool.posed - pool.neutral).norm(dim=-1).mean()
        errors.append((canonical[0] - pool.neutral).norm(dim=-1).mean())
        displacements.append(untouched)
        assert errors[-1] < 0.7 * untouched
        assert (rest[0] - pool.neutral).norm(dim=-1).mean() < 0.35 * untouched
        assert ambient.shape[-1] == 2
    assert sum(errors) < 0.35 * sum(displacements)


def test_cli_run_resumes_where_it_stopped_and_a_cancel_keeps_the_work(tmp_path, nphm_heads):
    """`train nphm` writes a loadable head; rerunning with more steps continues from the last step (stats go on
    from there); a cancelled run snapshots, and the next run resumes from the cancel."""
    from backend.cli import main

    run = tmp_path / "run"
    arguments = ["train", "nphm", "--data", str(nphm_heads), "--out", str(run), "--config", "tiny", "--identity-steps", "20",
                 "--expression-steps", "0", "--tick-steps", "10", "--device", "cpu"]
    assert main(arguments) == 0
    assert load_head(run).config.direction == "backward"
    assert main(arguments[:8] + ["--identity-steps", "30"] + arguments[10:]) == 0
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30]

    class StopAfter(SilentProgress):
        def update(self, fraction, stage):
            if len(self.reports) == 12:
                self.stop_requested = True
            super().update(fraction, stage)

    cancelled = tmp_path / "cancelled"
    config = replace(tiny_config(), identity_steps=40, expression_steps=0, tick_steps=100)
    with pytest.raises(Cancelled):
        train_nphm(nphm_heads, cancelled, config, StopAfter())
    assert load_head(cancelled) is not None
    result = train_nphm(nphm_heads, cancelled, config, SilentProgress())
    assert result.step == 40
    assert json.loads((cancelled / "config.json").read_text())["extra"]["step"] == 40


def test_a_run_with_other_settings_or_a_posed_head_off_its_neutral_is_refused(tmp_path, nphm_heads):
    """Another network in the same run folder is refused naming the setting; a posed head with other vertices is
    refused naming the file; a subject folder without a neutral is refused naming the folder."""
    from blender_addon.formats.errors import FormatError
    from training.nphm.config import configure

    run = tmp_path / "run"
    train_nphm(nphm_heads, run, replace(tiny_config(), identity_steps=2, expression_steps=0))
    with pytest.raises(FormatError, match="model"):
        train_nphm(nphm_heads, run, replace(configure("tiny", direction="forward"), identity_steps=2, expression_steps=0))
    bad = write_head_folder(tmp_path / "bad", subjects=("ada",), expressions=("jaw",))
    import trimesh

    trimesh.creation.icosphere(subdivisions=2).export(bad / "ada" / "extra.ply")
    with pytest.raises(InvalidInput, match="extra.ply does not share the vertices"):
        HeadMeshDataset(bad, (-1, -1, -1), (1, 1, 1), 100, 0.01)
    write_head(tmp_path / "loose" / "someone" / "smile.ply", HEAD_RADII["ada"])
    with pytest.raises(InvalidInput, match="someone/ has no neutral"):
        HeadMeshDataset(tmp_path / "loose", (-1, -1, -1), (1, 1, 1), 100, 0.01)


def train_rank(rank: int, port: int, data_dir: str, run_dir: str, out_dir: str) -> None:
    """One process, set up as torchrun would, running the NPHM trainer; saves its weights."""
    from pathlib import Path

    from safetensors.torch import save_file

    from training.distributed import cleanup

    context = join_as_rank(rank, port)
    try:
        config = replace(tiny_config(), identity_steps=4, expression_steps=4, tick_steps=4, snapshot_ticks=1)
        result = train_nphm(data_dir, run_dir, config, SilentProgress(), context)
        weights = {f"head.{k}": v for k, v in result.head.state_dict().items()}
        weights.update({"identity": result.identity_codes, "expression": result.expression_codes})
        save_file({k: v.contiguous() for k, v in weights.items()}, str(Path(out_dir) / f"rank{rank}.safetensors"))
    finally:
        cleanup(context)


def test_two_processes_end_with_identical_heads_and_codes(tmp_path, nphm_heads):
    """Under torchrun (two gloo processes) gradients of the networks and codes are averaged: both ranks end identical."""
    from safetensors.torch import load_file

    out = tmp_path / "out"
    out.mkdir()
    mp.start_processes(train_rank, args=(free_port(), str(nphm_heads), str(tmp_path / "run"), str(out)),
                       nprocs=WORLD_SIZE, join=True, start_method="spawn")
    rank0, rank1 = (load_file(str(out / f"rank{r}.safetensors")) for r in range(WORLD_SIZE))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert load_head(tmp_path / "run") is not None


def test_train_nphm_job_trains_on_an_uploaded_mesh_folder(tmp_path, nphm_heads):
    """The `train-nphm` job finds the mesh folder inside an extracted upload (the zip held the folder itself) and
    writes a head the fit job can name; without an upload or a dataset it says what to send."""
    import shutil

    from backend.jobs.registry import JobContext, get_kind
    from backend.model_cache import ModelCache

    upload = tmp_path / "inputs"
    shutil.copytree(nphm_heads, upload / "heads")
    kind = get_kind("train-nphm")
    context = JobContext("job1", tmp_path / "out", upload, SilentProgress(), ModelCache(), lambda ref: tmp_path, "cpu")
    (tmp_path / "out").mkdir()
    kind.run(kind.params(config="tiny", identity_steps=3, expression_steps=2, tick_steps=5), context)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["extra"]["subjects"] == ["ada", "bo"]
    empty = JobContext("job2", tmp_path / "out2", None, SilentProgress(), ModelCache(), lambda ref: tmp_path, "cpu")
    with pytest.raises(InvalidInput, match="no head meshes"):
        kind.run(kind.params(config="tiny"), empty)
