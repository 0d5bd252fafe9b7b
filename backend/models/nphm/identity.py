"""The identity SDF of NPHM: local DeepSDFs around facial anchors, blended with Gaussian weights.

The identity latent is ``[z_glob, z_1, ..., z_K, z_background]``: a global code (``global_latent``)
and one local code (``local_latent``) per anchor plus one for the global ("background") member,
``global_latent + (anchors + 1) * local_latent`` numbers in all (64 + 40 * 32 = 1344 as published).

- Anchor positions = ``mean_anchors`` + MLP(z_glob) (``anchor_mlp``: global -> hidden -> hidden -> 3K).
- Member k sees the point in its anchor's frame (``x - a_k``; the background member sees ``x``),
  with x negated for the second member of each mirror-symmetric pair (anchors ``2i``/``2i + 1``),
  and ``[z_glob, z_k]``; pairs share weights, so one network models both sides of the face.
- Blending weight of member k: ``exp(-|x - a_k|^2 / std^2)``, the background member's
  ``exp(-background_distance / std^2)``, normalised to sum to 1.

With ``ambient_dims`` > 0 (the backward model's canonical space, as in MonoNPHM/DiffusionAvatars) the
SDF is queried at 3 + ambient coordinates; the extra coordinates go to every member unmirrored and do
not enter the blending.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .local_ensemble import EnsembledSkipMLP

DISTANCE_EPSILON = 1e-5
WEIGHT_EPSILON = 1e-6


@dataclass
class IdentityConfig:
    """Defaults: NPHM's released identity network (``nphm.yaml``; the anchor MLP width 256 is the code's
    default, which the released training script uses)."""

    global_latent: int = 64
    local_latent: int = 32
    anchors: int = 39
    symmetric_pairs: int = 16
    hidden: int = 200
    layers: int = 4
    anchor_mlp_hidden: int = 256
    blend_std: float = 0.1
    background_distance: float = 0.2
    """The background member's constant in place of ``|x - a|^2``."""
    ambient_dims: int = 0

    def __post_init__(self) -> None:
        if 2 * self.symmetric_pairs > self.anchors:
            raise ValueError(f"symmetric_pairs ({self.symmetric_pairs}) pairs need 2x as many anchors, got {self.anchors}")
        for name in ("global_latent", "local_latent", "anchors", "hidden", "layers", "anchor_mlp_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.ambient_dims < 0 or self.blend_std <= 0:
            raise ValueError("ambient_dims must be >= 0 and blend_std > 0")

    @property
    def latent_dim(self) -> int:
        return self.global_latent + (self.anchors + 1) * self.local_latent

    @property
    def members(self) -> int:
        return self.anchors + 1

    @property
    def point_dim(self) -> int:
        return 3 + self.ambient_dims


class IdentitySdf(nn.Module):
    def __init__(self, config: IdentityConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean_anchors", torch.zeros(config.anchors, 3))
        self.anchor_mlp = nn.Sequential(
            nn.Linear(config.global_latent, config.anchor_mlp_hidden), nn.ReLU(),
            nn.Linear(config.anchor_mlp_hidden, config.anchor_mlp_hidden), nn.ReLU(),
            nn.Linear(config.anchor_mlp_hidden, config.anchors * 3))
        self.members = EnsembledSkipMLP(config.members, config.symmetric_pairs,
                                        config.point_dim + config.global_latent + config.local_latent,
                                        config.hidden, config.layers, 1)
        mirror = torch.ones(config.members)
        mirror[1:2 * config.symmetric_pairs:2] = -1.0
        self.register_buffer("mirror_sign", mirror, persistent=False)

    def anchors(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, latent_dim) -> anchor positions (B, anchors, 3)."""
        offsets = self.anchor_mlp(latent[:, :self.config.global_latent])
        return self.mean_anchors + offsets.view(-1, self.config.anchors, 3)

    def blend_weights(self, xyz: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """(B, N, members) normalised Gaussian weights; the last member is the background one."""
        squared = ((xyz.unsqueeze(2) - anchors.unsqueeze(1)).norm(dim=-1) + DISTANCE_EPSILON) ** 2
        background = torch.full_like(squared[..., :1], self.config.background_distance)
        weights = torch.exp(-torch.cat([squared, background], dim=-1) / self.config.blend_std ** 2)
        return weights / (weights.sum(dim=-1, keepdim=True) + WEIGHT_EPSILON)

    def forward(self, points: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (B, N, 3 + ambient_dims), latent (B, latent_dim) -> (sdf (B, N), anchors (B, anchors, 3))."""
        config = self.config
        batch, count, _ = points.shape
        anchors = self.anchors(latent)
        xyz = points[..., :3]
        centres = torch.cat([anchors, torch.zeros_like(anchors[:, :1])], dim=1)
        local = (xyz.unsqueeze(2) - centres.unsqueeze(1)) * torch.stack(
            [self.mirror_sign, torch.ones_like(self.mirror_sign), torch.ones_like(self.mirror_sign)], dim=-1)
        if config.ambient_dims:
            ambient = points[..., 3:].unsqueeze(2).expand(-1, -1, config.members, -1)
            local = torch.cat([local, ambient], dim=-1)
        glob = latent[:, :config.global_latent].view(batch, 1, 1, -1).expand(-1, count, config.members, -1)
        codes = latent[:, config.global_latent:].view(batch, 1, config.members, config.local_latent).expand(-1, count, -1, -1)
        inputs = torch.cat([local, glob, codes], dim=-1).permute(2, 0, 1, 3).reshape(config.members, batch * count, -1)
        member_sdf = self.members(inputs).view(config.members, batch, count).permute(1, 2, 0)
        sdf = (self.blend_weights(xyz, anchors) * member_sdf).sum(dim=-1)
        return sdf, anchors
