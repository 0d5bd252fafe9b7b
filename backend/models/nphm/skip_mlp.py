"""The DeepSDF MLP NPHM builds everything from.

``n_layers`` hidden layers of ``hidden`` units and an output layer; the input is concatenated again
(divided by sqrt 2) before layer ``n_layers // 2``, so the layer just before it outputs
``hidden - input`` features. Softplus with beta 100 (a smooth ReLU, so SDF gradients exist everywhere).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

SOFTPLUS_BETA = 100.0


def skip_layer_index(n_layers: int) -> int:
    """The layer that receives the input again."""
    return n_layers // 2


def skip_mlp_shapes(input_dim: int, hidden: int, n_layers: int, output_dim: int) -> list[tuple[int, int]]:
    """(in, out) of each linear layer, the layout of both NPHM networks' ``lin<k>`` layers."""
    if hidden <= input_dim:
        raise ValueError(f"hidden width {hidden} must exceed the input width {input_dim} (the skip layer outputs hidden - input)")
    widths = [input_dim] + [hidden] * n_layers + [output_dim]
    skip = skip_layer_index(n_layers)
    shapes = []
    for layer in range(len(widths) - 1):
        out = widths[layer + 1] - input_dim if layer + 1 == skip else widths[layer + 1]
        shapes.append((widths[layer], out))
    return shapes


def run_skip_layers(layers: nn.ModuleList, inputs: torch.Tensor, skip: int) -> torch.Tensor:
    """The forward pass shared by the plain and the ensembled MLP (``layers`` may be either kind of linear)."""
    x = inputs
    for index, layer in enumerate(layers):
        if index == skip:
            x = torch.cat([x, inputs], dim=-1) / math.sqrt(2.0)
        x = layer(x)
        if index < len(layers) - 1:
            x = F.softplus(x, beta=SOFTPLUS_BETA)
    return x


class SkipMLP(nn.Module):
    def __init__(self, input_dim: int, hidden: int, n_layers: int, output_dim: int) -> None:
        super().__init__()
        self.skip = skip_layer_index(n_layers)
        self.layers = nn.ModuleList(nn.Linear(fan_in, fan_out) for fan_in, fan_out in skip_mlp_shapes(input_dim, hidden, n_layers, output_dim))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return run_skip_layers(self.layers, inputs, self.skip)
