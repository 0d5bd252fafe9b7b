"""Meshes of a fitted NPHM by marching cubes (scikit-image), each vertex with its canonical coordinates.

- Backward models: the posed SDF is sampled on a grid over the model's box and meshed directly; every
  vertex is then canonicalised, which gives its canonical xyz and its ambient coordinates (DiffusionAvatars'
  5-D canonical coordinate).
- Forward models: the canonical (neutral) SDF is meshed and its vertices are deformed; the canonical xyz is
  the vertex before deformation and there are no ambient coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...errors import InvalidInput
from .model import NeuralHead

POINTS_PER_CHUNK = 65536


@dataclass
class ProxyMesh:
    vertices: np.ndarray
    """(V, 3) posed positions, model space."""
    faces: np.ndarray
    canonical: np.ndarray
    """(V, 3) canonical (neutral) positions, model space."""
    ambient: np.ndarray
    """(V, A) ambient coordinates (A = 0 for forward models)."""


def _grid(head: NeuralHead, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low, high = np.asarray(head.config.box_min, dtype=np.float64), np.asarray(head.config.box_max, dtype=np.float64)
    spacing = (high - low) / (resolution - 1)
    axes = [np.linspace(low[i], high[i], resolution) for i in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float32)
    return points, low, spacing


@torch.no_grad()
def _sample(field, points: np.ndarray, device: torch.device) -> np.ndarray:
    values = [field(torch.from_numpy(chunk).to(device)[None])[0].cpu() for chunk in np.array_split(points, max(1, len(points) // POINTS_PER_CHUNK))]
    return torch.cat(values).numpy()


def _marching_cubes(values: np.ndarray, resolution: int, low: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from skimage.measure import marching_cubes

    volume = values.reshape(resolution, resolution, resolution)
    if not (volume.min() < 0.0 < volume.max()):
        raise InvalidInput(f"the head's SDF does not cross zero in its box (values {volume.min():.3f} to {volume.max():.3f})",
                           "fit or train the model longer, or check that the codes belong to this model", field="model")
    vertices, faces, _, _ = marching_cubes(volume, level=0.0, spacing=tuple(spacing))
    return (vertices + low).astype(np.float32), faces.astype(np.int64)


def canonical_mesh(head: NeuralHead, identity: torch.Tensor, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The neutral head (ambient coordinates 0) as (vertices, faces) in model space."""
    device = next(head.parameters()).device
    identity = identity.to(device).view(1, -1)
    ambient = head.config.ambient_dims

    def field(points: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([points, points.new_zeros(*points.shape[:-1], ambient)], dim=-1)
        return head.canonical_sdf(padded, identity)

    points, low, spacing = _grid(head, resolution)
    return _marching_cubes(_sample(field, points, device), resolution, low, spacing)


@torch.no_grad()
def posed_proxy(head: NeuralHead, identity: torch.Tensor, expression: torch.Tensor, resolution: int) -> ProxyMesh:
    device = next(head.parameters()).device
    identity, expression = identity.to(device).view(1, -1), expression.to(device).view(1, -1)
    if head.config.direction == "forward":
        canonical, faces = canonical_mesh(head, identity, resolution)
        posed = head.deform(torch.from_numpy(canonical).to(device)[None], identity, expression)[0].cpu().numpy()
        return ProxyMesh(posed, faces, canonical, np.zeros((len(canonical), 0), np.float32))
    points, low, spacing = _grid(head, resolution)
    vertices, faces = _marching_cubes(_sample(lambda p: head.posed_sdf(p, identity, expression), points, device), resolution, low, spacing)
    canonical, ambient = head.canonicalise(torch.from_numpy(vertices).to(device)[None], identity, expression)
    return ProxyMesh(vertices, faces, canonical[0].cpu().numpy(), ambient[0].cpu().numpy())
