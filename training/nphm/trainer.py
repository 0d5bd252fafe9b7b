"""Training NPHM on a folder of head meshes: the identity stage, then the expression stage.

Identity stage: the identity network and one identity code per subject (auto-decoding) learn the neutral
heads from surface points with normals and points anywhere in the box. Expression stage: the identity is
frozen; the deformation network and one expression code per posed head learn the exact correspondences
between each posed head and its neutral. A dataset of neutrals only stops after the identity stage.

Run directory::

    config.json + model.safetensors   the head (what `fit nphm` and `models add --role nphm` take)
    latents.safetensors               the training codes: identity (subjects), expression (posed heads)
    train_state.safetensors           network, codes, optimisers, step (to resume)
    training_config.json              the NphmTrainingConfig of the run
    stats.jsonl                       one line of mean losses per tick
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from backend.formats.checkpoint import load_train_state, save_train_state
from backend.formats.configs import config_to_dict
from backend.models.nphm.model import NeuralHead, save_head
from backend.models.nphm.official import LATENTS_NAME
from backend.progress import Progress, SilentProgress
from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write
from training.distributed import (DistributedContext, average_gradients, barrier, broadcast_module, init_distributed,
                                  replicas_identical)
from training.run_config import resolve_run_config

from .anchors import symmetric_anchors
from .config import NphmTrainingConfig
from .dataset import HeadMeshDataset
from .losses import expression_losses, identity_losses, weighted_total

STATS_NAME = "stats.jsonl"
RESUMABLE_CHANGES = ("identity_steps", "expression_steps", "tick_steps", "snapshot_ticks")
LATENT_INIT_STD = 0.01


@dataclass
class NphmTrainResult:
    run_dir: Path
    step: int
    head: NeuralHead
    identity_codes: torch.Tensor
    expression_codes: torch.Tensor
    ticks: list[dict] = field(default_factory=list)


class NphmTrainer:
    def __init__(self, data_dir: str | Path, run_dir: str | Path, config: NphmTrainingConfig,
                 progress: Progress | None = None, context: DistributedContext | None = None) -> None:
        self.context = context or init_distributed()
        self.progress = progress if (progress is not None and self.context.is_main) else SilentProgress()
        self.run_dir = Path(run_dir)
        self.config = resolve_run_config(self.run_dir, config, RESUMABLE_CHANGES, write=self.context.is_main)
        if self.config.batch_size % self.context.world_size:
            raise FormatError("batch_size", f"{self.config.batch_size} does not split over {self.context.world_size} processes",
                              "use a batch size divisible by --nproc_per_node")
        self.local_batch = self.config.batch_size // self.context.world_size
        self.device = self.context.device
        model = self.config.model
        self.dataset = HeadMeshDataset(data_dir, model.box_min, model.box_max, self.config.pool_size, self.config.near_sigma, self.config.seed)
        self.data_dir = str(data_dir)
        torch.manual_seed(self.config.seed)
        self.head = NeuralHead(model)
        self._initialise_networks()
        self.head.to(self.device).train()
        self.identity_codes = torch.nn.Parameter(torch.randn(len(self.dataset.subjects), model.identity.latent_dim, device=self.device) * LATENT_INIT_STD)
        self.expression_codes = torch.nn.Parameter(torch.randn(len(self.dataset.correspondences), model.expression.expression_dim,
                                                               device=self.device) * LATENT_INIT_STD)
        self.opt_identity = torch.optim.Adam([{"params": list(self.head.identity.parameters()), "lr": self.config.identity_lr},
                                              {"params": [self.identity_codes], "lr": self.config.identity_latent_lr}])
        self.opt_expression = torch.optim.Adam([{"params": list(self.head.deformation.parameters()), "lr": self.config.expression_lr},
                                                {"params": [self.expression_codes], "lr": self.config.expression_latent_lr}])
        self.step = 0
        self.ticks: list[dict] = []
        self._tick_sums: dict[str, float] = {}
        self._tick_count = 0
        self._resume()
        broadcast_module(self.head, self.context)
        for codes in (self.identity_codes, self.expression_codes):
            broadcast_module(_Holder(codes), self.context)
        self.rng = torch.Generator().manual_seed(self.config.seed * 7919 + self.context.rank * 104729 + self.step)

    def _initialise_networks(self) -> None:
        """Mean anchors from the dataset's neutral surfaces; the SDF starts close to a sphere (IGR's geometric
        initialisation of the output layer); the deformation starts as the identity map (zero output layer)."""
        identity = self.config.model.identity
        surface = torch.cat([pool.points for pool in self.dataset.surfaces]).numpy()
        anchors = symmetric_anchors(surface, identity.anchors, identity.symmetric_pairs)
        last = self.head.identity.members.layers[-1]
        with torch.no_grad():
            self.head.identity.mean_anchors.copy_(torch.from_numpy(anchors))
            torch.nn.init.normal_(last.weight, mean=(torch.pi ** 0.5) / last.weight.shape[-1] ** 0.5, std=1e-5)
            last.bias.fill_(-self.config.sphere_radius)
            self.head.deformation.mlp.layers[-1].weight.zero_()
            self.head.deformation.mlp.layers[-1].bias.zero_()

    # ----------------------------------------------------------------- state
    def _resume(self) -> None:
        state = load_train_state(self.run_dir)
        if state is None:
            return
        self.head.load_state_dict(state["head"])
        with torch.no_grad():
            self.identity_codes.copy_(state["identity_codes"])
            self.expression_codes.copy_(state["expression_codes"])
        self.opt_identity.load_state_dict(state["opt_identity"])
        self.opt_expression.load_state_dict(state["opt_expression"])
        self.step = int(state["step"])

    def snapshot(self) -> None:
        """The head, its training codes and the full train state, each written atomically (main process only)."""
        if not self.context.is_main:
            return
        from safetensors.torch import save_file

        codes = {"identity": self.identity_codes.detach().cpu().contiguous(), "expression": self.expression_codes.detach().cpu().contiguous()}
        atomic_write(self.run_dir / LATENTS_NAME, lambda temp: save_file(codes, str(temp)))
        save_head(self.run_dir, self.head, extra={"step": self.step, "dataset": self.data_dir, "subjects": [s.name for s in self.dataset.subjects],
                                                  "normalisation": self.dataset.normalisation.to_json(),
                                                  "training_config": config_to_dict(self.config)})
        save_train_state(self.run_dir, {"head": self.head.state_dict(), "identity_codes": self.identity_codes.detach(),
                                        "expression_codes": self.expression_codes.detach(), "opt_identity": self.opt_identity.state_dict(),
                                        "opt_expression": self.opt_expression.state_dict(), "step": self.step})

    # ----------------------------------------------------------------- steps
    def _space_points(self, count: int) -> torch.Tensor:
        low, high = torch.tensor(self.config.model.box_min), torch.tensor(self.config.model.box_max)
        return low + (high - low) * torch.rand(self.local_batch, count, 3, generator=self.rng)

    def identity_step(self) -> dict[str, float]:
        subjects = torch.randint(len(self.dataset.subjects), (self.local_batch,), generator=self.rng)
        batch = self.dataset.identity_batch(subjects, self.config.surface_points, self.rng)
        device = self.device
        losses = identity_losses(self.head, self.identity_codes[subjects.to(device)], batch["surface"].to(device),
                                 batch["normals"].to(device), self._space_points(self.config.space_points).to(device))
        total = weighted_total(losses, self.config.identity_losses)
        self.opt_identity.zero_grad(set_to_none=True)
        total.backward()
        parameters = list(self.head.identity.parameters()) + [self.identity_codes]
        average_gradients(parameters, self.context)
        torch.nn.utils.clip_grad_norm_(self.head.identity.parameters(), self.config.identity_grad_clip)
        self.opt_identity.step()
        return {f"identity_{name}": value.item() for name, value in losses.items()} | {"identity_loss": total.item()}

    def expression_step(self) -> dict[str, float]:
        items = torch.randint(len(self.dataset.correspondences), (self.local_batch,), generator=self.rng)
        batch = self.dataset.expression_batch(items, self.config.correspondence_points, self.rng)
        device = self.device
        self.head.identity.requires_grad_(False)
        identity = self.identity_codes.detach()[batch["subject"].to(device)]
        expression = self.expression_codes[items.to(device)]
        losses = expression_losses(self.head, identity, expression, batch["neutral"].to(device), batch["posed"].to(device))
        neutral = batch["neutral"].to(device)
        zero_code = torch.zeros_like(expression)
        rest = expression_losses(self.head, identity, zero_code, neutral, neutral)
        losses["correspondence"] = 0.5 * (losses["correspondence"] + rest["correspondence"])
        total = weighted_total(losses, self.config.expression_losses)
        self.opt_expression.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(list(self.head.deformation.parameters()) + [self.expression_codes], self.context)
        torch.nn.utils.clip_grad_norm_(self.head.deformation.parameters(), self.config.expression_grad_clip)
        self.opt_expression.step()
        return {f"expression_{name}": value.item() for name, value in losses.items()} | {"expression_loss": total.item()}

    def train_step(self) -> dict[str, float]:
        in_identity_stage = self.step < self.config.identity_steps
        stats = self.identity_step() if in_identity_stage else self.expression_step()
        self.step += 1
        return stats

    @property
    def last_step(self) -> int:
        """Where training ends: without posed heads there is no expression stage."""
        return self.config.total_steps if self.dataset.has_expressions else self.config.identity_steps

    # ----------------------------------------------------------------- loop
    def run(self) -> NphmTrainResult:
        last = self.last_step
        try:
            while self.step < last:
                stats = self.train_step()
                for key, value in stats.items():
                    self._tick_sums[key] = self._tick_sums.get(key, 0.0) + value
                self._tick_count += 1
                finished = self.step >= last
                stage = "identity" if self.step <= self.config.identity_steps else "expression"
                loss = stats.get("identity_loss", stats.get("expression_loss", 0.0))
                if self.step % self.config.tick_steps == 0 or finished:
                    self._end_tick()
                    if len(self.ticks) % self.config.snapshot_ticks == 0 or finished:
                        self._checked_snapshot()
                self.progress.update(self.step / max(last, 1), f"training NPHM ({stage} stage): step {self.step}/{last}, loss {loss:.4f}")
            if self.step >= last and not (self.run_dir / "model.safetensors").is_file():
                self._checked_snapshot()
        except (Exception, KeyboardInterrupt):
            # Cancelled, interrupted or failed: keep the work done so far so that the run resumes from here.
            self.snapshot()
            raise
        return NphmTrainResult(self.run_dir, self.step, self.head, self.identity_codes.detach(), self.expression_codes.detach(), self.ticks)

    def _end_tick(self) -> None:
        tick = {"step": self.step, **{key: value / max(self._tick_count, 1) for key, value in self._tick_sums.items()}}
        self._tick_sums, self._tick_count = {}, 0
        self.ticks.append(tick)
        if self.context.is_main:
            with open(self.run_dir / STATS_NAME, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(tick) + "\n")

    def _checked_snapshot(self) -> None:
        if not replicas_identical(self.head, self.context):
            raise RuntimeError("processes hold different weights; gradients were not synchronised")
        self.snapshot()
        barrier(self.context)


class _Holder(torch.nn.Module):
    """Wraps a bare parameter so that it can be broadcast like a module's."""

    def __init__(self, parameter: torch.nn.Parameter) -> None:
        super().__init__()
        self.parameter = parameter


def train_nphm(data_dir: str | Path, run_dir: str | Path, config: NphmTrainingConfig, progress: Progress | None = None,
               context: DistributedContext | None = None) -> NphmTrainResult:
    """Train (or resume) an NPHM run; the same call works single-process and under torchrun."""
    return NphmTrainer(data_dir, run_dir, config, progress, context).run()
