"""The expression deformation of NPHM, in both directions.

Both condition a DeepSDF-style MLP on the expression code and a *compressed identity*: one linear
layer over the whole identity latent and the identity's anchor positions (NPHM's "compress" mode;
1344 + 39 * 3 = 1461 -> 32 as published), so that one expression code moves every head alike.

- ``ForwardDeformation`` (the original NPHM): a neutral (canonical) point -> its offset into the posed
  head. Meshes come from the canonical SDF and are deformed; fitting to posed data needs the inverse.
- ``BackwardDeformation`` (MonoNPHM, what DiffusionAvatars tracks with): a posed point -> its offset back
  to canonical space plus ``ambient_dims`` ambient ("hyper") coordinates, so that the posed SDF is
  ``F_id(x + offset, ambient)`` and topology changes (a mouth opening) need no inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .skip_mlp import SkipMLP


@dataclass
class ExpressionConfig:
    """Defaults: NPHM's released expression network (``nphm_def.yaml``: 6 x 512, z_ex 200, identity 32)."""

    expression_dim: int = 200
    compressed_identity: int = 32
    hidden: int = 512
    layers: int = 6
    ambient_dims: int = 0
    """Output ambient coordinates (backward direction only; 2 in MonoNPHM and DiffusionAvatars)."""

    def __post_init__(self) -> None:
        for name in ("expression_dim", "compressed_identity", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.ambient_dims < 0:
            raise ValueError("ambient_dims must be >= 0")


class _ConditionedDeformation(nn.Module):
    def __init__(self, config: ExpressionConfig, identity_latent: int, anchors: int, output_dim: int) -> None:
        super().__init__()
        self.config = config
        self.identity_compressor = nn.Linear(identity_latent + anchors * 3, config.compressed_identity)
        self.mlp = SkipMLP(3 + config.expression_dim + config.compressed_identity, config.hidden, config.layers, output_dim)

    def raw(self, points: torch.Tensor, expression: torch.Tensor, identity: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3), expression (B, E), identity (B, L), anchors (B, K, 3) -> (B, N, output)."""
        compressed = self.identity_compressor(torch.cat([identity, anchors.flatten(1)], dim=-1))
        condition = torch.cat([expression, compressed], dim=-1).unsqueeze(1).expand(-1, points.shape[1], -1)
        return self.mlp(torch.cat([points, condition], dim=-1))


class ForwardDeformation(_ConditionedDeformation):
    def __init__(self, config: ExpressionConfig, identity_latent: int, anchors: int) -> None:
        if config.ambient_dims:
            raise ValueError("the forward deformation has no ambient coordinates (set ambient_dims to 0)")
        super().__init__(config, identity_latent, anchors, 3)

    def forward(self, canonical: torch.Tensor, expression: torch.Tensor, identity: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Neutral points -> offsets to the posed head (B, N, 3)."""
        return self.raw(canonical, expression, identity, anchors)


class BackwardDeformation(_ConditionedDeformation):
    def __init__(self, config: ExpressionConfig, identity_latent: int, anchors: int) -> None:
        super().__init__(config, identity_latent, anchors, 3 + config.ambient_dims)

    def forward(self, posed: torch.Tensor, expression: torch.Tensor, identity: torch.Tensor,
                anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed points -> (offsets to canonical space (B, N, 3), ambient coordinates (B, N, ambient_dims))."""
        output = self.raw(posed, expression, identity, anchors)
        return output[..., :3], output[..., 3:]
