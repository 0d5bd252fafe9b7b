"""The neural head: identity SDF + expression deformation, one config, one checkpoint.

``NeuralHead`` answers the questions the trainer, the fitter and the proxy extraction ask:

- ``canonical_sdf(points, z_id)``: the neutral head (points carry ambient coordinates when it has them);
- ``canonicalise(posed, z_id, z_ex)`` (backward models): posed points -> canonical xyz + ambient;
- ``posed_sdf(posed, z_id, z_ex)`` (backward models): the SDF of the posed head;
- ``deform(canonical, z_id, z_ex)`` (forward models): neutral points -> posed points.

Coordinates are NPHM's (FLAME x 4: y up, the face towards +z, the head about 1 unit tall); the box
the meshes are extracted in is part of the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ...formats.checkpoint import load_weights, read_checkpoint_config, save_checkpoint
from .expression import BackwardDeformation, ExpressionConfig, ForwardDeformation
from .identity import IdentityConfig, IdentitySdf

CHECKPOINT_KIND = "nphm"
NPHM_BOX = ((-0.55, -0.5, -0.95), (0.55, 0.75, 0.4))
"""NPHM's marching-cubes box in its scaled FLAME space."""


@dataclass
class NphmConfig:
    """Default: NPHM's published identity and expression sizes in the backward form DiffusionAvatars
    tracks with (2 ambient coordinates, 200-d expression codes). ``nphm_forward_config()`` is the
    original NPHM; ``mononphm_sized_config()`` has MonoNPHM's published sizes."""

    identity: IdentityConfig = field(default_factory=lambda: IdentityConfig(ambient_dims=2))
    expression: ExpressionConfig = field(default_factory=lambda: ExpressionConfig(ambient_dims=2))
    direction: Literal["backward", "forward"] = "backward"
    box_min: tuple[float, float, float] = NPHM_BOX[0]
    box_max: tuple[float, float, float] = NPHM_BOX[1]

    def __post_init__(self) -> None:
        if self.direction not in ("backward", "forward"):
            raise ValueError(f"direction must be 'backward' or 'forward', got {self.direction!r}")
        ambient = self.expression.ambient_dims if self.direction == "backward" else 0
        if self.identity.ambient_dims != ambient or (self.direction == "forward" and self.expression.ambient_dims):
            raise ValueError(f"a {self.direction} model needs identity.ambient_dims == expression.ambient_dims "
                             f"({'0' if self.direction == 'forward' else 'the ambient coordinates the deformation outputs'})")
        if any(low >= high for low, high in zip(self.box_min, self.box_max)):
            raise ValueError("box_min must lie below box_max on every axis")

    @property
    def ambient_dims(self) -> int:
        return self.identity.ambient_dims


def nphm_forward_config() -> NphmConfig:
    return NphmConfig(IdentityConfig(), ExpressionConfig(), "forward")


def mononphm_sized_config() -> NphmConfig:
    """MonoNPHM's published sizes (65 anchors in 30 pairs, z_ex 100, identity 16, 6 x 400, 2 ambient)."""
    return NphmConfig(IdentityConfig(anchors=65, symmetric_pairs=30, ambient_dims=2),
                      ExpressionConfig(expression_dim=100, compressed_identity=16, hidden=400, ambient_dims=2))


def tiny_config(direction: Literal["backward", "forward"] = "backward") -> NphmConfig:
    """For tests and smoke runs: 5 anchors (2 mirrored pairs + 1 on the middle plane) with wide blending, narrow MLPs."""
    ambient = 2 if direction == "backward" else 0
    return NphmConfig(IdentityConfig(global_latent=8, local_latent=4, anchors=5, symmetric_pairs=2, hidden=32, layers=2,
                                     anchor_mlp_hidden=16, blend_std=0.3, ambient_dims=ambient),
                      ExpressionConfig(expression_dim=4, compressed_identity=4, hidden=64, layers=4, ambient_dims=ambient),
                      direction)


class NeuralHead(nn.Module):
    def __init__(self, config: NphmConfig) -> None:
        super().__init__()
        self.config = config
        self.identity = IdentitySdf(config.identity)
        deformation = BackwardDeformation if config.direction == "backward" else ForwardDeformation
        self.deformation = deformation(config.expression, config.identity.latent_dim, config.identity.anchors)

    @property
    def identity_dim(self) -> int:
        return self.config.identity.latent_dim

    @property
    def expression_dim(self) -> int:
        return self.config.expression.expression_dim

    def canonical_sdf(self, points: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return self.identity(points, identity)[0]

    def canonicalise(self, posed: torch.Tensor, identity: torch.Tensor, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward models: posed (B, N, 3) -> (canonical xyz (B, N, 3), ambient (B, N, A))."""
        self._require("backward", "canonicalise posed points")
        offsets, ambient = self.deformation(posed, expression, identity, self.identity.anchors(identity))
        return posed + offsets, ambient

    def posed_sdf(self, posed: torch.Tensor, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        canonical, ambient = self.canonicalise(posed, identity, expression)
        return self.canonical_sdf(torch.cat([canonical, ambient], dim=-1), identity)

    def deform(self, canonical: torch.Tensor, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Forward models: neutral points (B, N, 3) -> posed points."""
        self._require("forward", "deform neutral points")
        return canonical + self.deformation(canonical, expression, identity, self.identity.anchors(identity))

    def _require(self, direction: str, what: str) -> None:
        if self.config.direction != direction:
            raise ValueError(f"only a {direction} NPHM can {what}; this one is {self.config.direction}")


def save_head(directory: str | Path, head: NeuralHead, extra: dict | None = None) -> Path:
    """``model.safetensors`` + ``config.json``; :func:`load_head` is its exact inverse."""
    return save_checkpoint(directory, CHECKPOINT_KIND, head.config, head.state_dict(), extra)


def read_head_config(directory: str | Path) -> tuple[NphmConfig, dict]:
    return read_checkpoint_config(directory, CHECKPOINT_KIND, NphmConfig)


def load_head(directory: str | Path, device: str | torch.device = "cpu") -> NeuralHead:
    """The head saved in ``directory``, every weight present with the shape its config builds."""
    from .official import check_exact_keys

    config, _ = read_head_config(directory)
    head = NeuralHead(config)
    weights = load_weights(directory)
    check_exact_keys(head.state_dict(), weights, str(directory))
    head.load_state_dict(weights, strict=True)
    return head.to(device).eval()


def with_box(config: NphmConfig, box_min: tuple[float, float, float], box_max: tuple[float, float, float]) -> NphmConfig:
    return replace(config, box_min=tuple(box_min), box_max=tuple(box_max))
