"""Every NPHM training option in one place, with the presets ``tiny`` and ``full``.

``full`` follows the released configs (``nphm.yaml``: lr 5e-4 / latents 1e-3, surface 2.0, normals 0.3,
eikonal 0.1, off-surface 0.01, symmetry 0.01, latent 0.01, anchors 7.5; ``nphm_def.yaml``: lr 1e-4 /
latents 5e-4, correspondence 100, latent 5e-5), in optimiser steps instead of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from backend.models.nphm.model import NphmConfig, tiny_config as tiny_model_config
from blender_addon.formats.errors import FormatError


@dataclass
class IdentityLosses:
    surface: float = 2.0
    normals: float = 0.3
    eikonal: float = 0.1
    space: float = 0.01
    """Off-surface points in the box are pushed away from the zero level set: exp(-100 |sdf|)."""
    symmetry: float = 0.01
    """Predicted anchors of a pair mirror each other."""
    anchors: float = 7.5
    """Predicted anchors stay near the dataset's mean anchors (the released model supervised them with landmarks)."""
    latent: float = 0.01


@dataclass
class ExpressionLosses:
    correspondence: float = 100.0
    posed_surface: float = 1.0
    """Backward models: posed surface points have posed SDF 0 (lets the ambient coordinates open the mouth)."""
    ambient: float = 0.05
    """Backward models: ambient coordinates stay small (zero on the neutral)."""
    latent: float = 5e-5


@dataclass
class NphmTrainingConfig:
    model: NphmConfig = field(default_factory=NphmConfig)
    identity_steps: int = 100_000
    expression_steps: int = 50_000
    batch_size: int = 32
    """Subjects (identity stage) or posed heads (expression stage) per step, over all processes."""
    surface_points: int = 1000
    space_points: int = 250
    correspondence_points: int = 1000
    pool_size: int = 50_000
    """Surface samples drawn once per mesh."""
    near_sigma: float = 0.01
    sphere_radius: float = 0.4
    """The identity SDF starts close to a sphere of this radius (IGR's geometric initialisation of the output layer)."""
    identity_lr: float = 5e-4
    identity_latent_lr: float = 1e-3
    expression_lr: float = 1e-4
    expression_latent_lr: float = 5e-4
    identity_grad_clip: float = 0.1
    expression_grad_clip: float = 0.025
    identity_losses: IdentityLosses = field(default_factory=IdentityLosses)
    expression_losses: ExpressionLosses = field(default_factory=ExpressionLosses)
    tick_steps: int = 500
    snapshot_ticks: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "surface_points", "space_points", "correspondence_points", "pool_size", "tick_steps", "snapshot_ticks"):
            if getattr(self, name) < 1:
                raise FormatError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.identity_steps < 0 or self.expression_steps < 0 or self.identity_steps + self.expression_steps < 1:
            raise FormatError("identity_steps", "identity_steps and expression_steps must be >= 0 and not both 0")

    @property
    def total_steps(self) -> int:
        return self.identity_steps + self.expression_steps


def tiny_config() -> NphmTrainingConfig:
    """Seconds on a CPU: the tiny network, a few hundred points, a few hundred steps."""
    return NphmTrainingConfig(model=tiny_model_config("backward"), identity_steps=300, expression_steps=400, batch_size=2,
                              surface_points=192, space_points=96, correspondence_points=192, pool_size=2000,
                              identity_lr=2e-3, identity_latent_lr=2e-3, expression_lr=2e-3, expression_latent_lr=1e-2,
                              identity_grad_clip=1.0, expression_grad_clip=100.0, tick_steps=50, snapshot_ticks=2)


PRESETS = {"tiny": tiny_config, "full": NphmTrainingConfig}


def configure(preset_name: str, *, direction: str | None = None, identity_steps: int | None = None,
              expression_steps: int | None = None, batch_size: int | None = None, tick_steps: int | None = None,
              seed: int | None = None) -> NphmTrainingConfig:
    """A preset with the options people change most often replaced (None keeps the preset's value);
    CLI flags and job params map one to one onto these arguments."""
    if preset_name not in PRESETS:
        raise FormatError("config", f"unknown preset {preset_name!r}", f"use one of: {', '.join(PRESETS)}")
    config = PRESETS[preset_name]()
    changes = {"identity_steps": identity_steps, "expression_steps": expression_steps, "batch_size": batch_size,
               "tick_steps": tick_steps, "seed": seed}
    config = replace(config, **{key: value for key, value in changes.items() if value is not None})
    if direction is not None and direction != config.model.direction:
        config = replace(config, model=_with_direction(config.model, direction))
    return config


def _with_direction(model: NphmConfig, direction: str) -> NphmConfig:
    ambient = 2 if direction == "backward" else 0
    return replace(model, identity=replace(model.identity, ambient_dims=ambient),
                   expression=replace(model.expression, ambient_dims=ambient), direction=direction)
