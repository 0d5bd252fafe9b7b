"""Mapping network z (+ optional camera) -> w, with the running mean of w that truncation pulls to."""

from __future__ import annotations

import torch
from torch import nn

from .layers import EqualizedLinear, normalize_2nd_moment


class MappingNetwork(nn.Module):
    """z (and, with generator pose conditioning, an embedding of the 25-number camera) -> ws.

    ``c_dim = 0`` means no pose conditioning (the default for randomly posed avatar data).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        self.embed_c = EqualizedLinear(c_dim, w_dim) if c_dim > 0 else None
        widths = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(widths[i], widths[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = False) -> torch.Tensor:
        x = normalize_2nd_moment(z.float())
        if self.embed_c is not None:
            if c is None:
                raise ValueError("this generator is pose-conditioned: pass the camera label c")
            x = torch.cat([x, normalize_2nd_moment(self.embed_c(c.float()))], dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1.0:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws
