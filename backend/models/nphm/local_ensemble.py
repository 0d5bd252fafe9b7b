"""Many DeepSDF MLPs evaluated at once (one per facial anchor plus a global one), as batched matmuls.

Members ``2i`` and ``2i + 1`` for ``i < symmetric_pairs`` are a mirror-symmetric pair and share one
weight set (the caller negates x for the odd member); the remaining members have their own. So the
stored weights have ``members - symmetric_pairs`` entries, in NPHM's order: the shared pair weights
first, then the unpaired members.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from .skip_mlp import run_skip_layers, skip_layer_index, skip_mlp_shapes


class EnsembledLinear(nn.Module):
    def __init__(self, members: int, symmetric_pairs: int, fan_in: int, fan_out: int) -> None:
        super().__init__()
        if 2 * symmetric_pairs > members:
            raise ValueError(f"{symmetric_pairs} symmetric pairs need at least {2 * symmetric_pairs} members, got {members}")
        self.symmetric_pairs = symmetric_pairs
        distinct = members - symmetric_pairs
        self.weight = nn.Parameter(torch.empty(distinct, fan_out, fan_in))
        self.bias = nn.Parameter(torch.empty(distinct, fan_out))
        for member in range(distinct):
            nn.init.kaiming_uniform_(self.weight.data[member], a=math.sqrt(5))
            nn.init.uniform_(self.bias.data[member], -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def per_member(self, tensor: torch.Tensor) -> torch.Tensor:
        """Stored (distinct) weights -> one entry per member (pairs repeated)."""
        pairs = self.symmetric_pairs
        return torch.cat([tensor[:pairs].repeat_interleave(2, dim=0), tensor[pairs:]], dim=0)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (members, points, fan_in) -> (members, points, fan_out)."""
        return torch.baddbmm(self.per_member(self.bias).unsqueeze(1), inputs, self.per_member(self.weight).transpose(1, 2))


class EnsembledSkipMLP(nn.Module):
    def __init__(self, members: int, symmetric_pairs: int, input_dim: int, hidden: int, n_layers: int, output_dim: int = 1) -> None:
        super().__init__()
        self.skip = skip_layer_index(n_layers)
        self.layers = nn.ModuleList(EnsembledLinear(members, symmetric_pairs, fan_in, fan_out)
                                    for fan_in, fan_out in skip_mlp_shapes(input_dim, hidden, n_layers, output_dim))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (members, points, input_dim) -> (members, points, output_dim)."""
        return run_skip_layers(self.layers, inputs, self.skip)
