"""NPHM's training losses: the identity SDF's (surface, normals, eikonal, off-surface, symmetry, anchors,
latent) and the expression deformation's (correspondence, posed surface, ambient, latent)."""

from __future__ import annotations

import torch

from backend.models.nphm.model import NeuralHead

SPACE_SHARPNESS = 100.0


def gradient(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(outputs.sum(), inputs, create_graph=True)[0]


def with_zero_ambient(points: torch.Tensor, ambient_dims: int) -> torch.Tensor:
    """Neutral points in the canonical space of a model with ambient coordinates sit at ambient 0."""
    return torch.cat([points, points.new_zeros(*points.shape[:-1], ambient_dims)], dim=-1) if ambient_dims else points


def mirror_pair_distance(anchors: torch.Tensor, symmetric_pairs: int) -> torch.Tensor:
    """Mean squared distance between anchor 2i and the mirror image of anchor 2i + 1."""
    if symmetric_pairs == 0:
        return anchors.new_zeros(())
    left = anchors[:, 0:2 * symmetric_pairs:2]
    right = anchors[:, 1:2 * symmetric_pairs:2] * anchors.new_tensor([-1.0, 1.0, 1.0])
    return ((left - right) ** 2).sum(-1).mean()


def identity_losses(head: NeuralHead, latent: torch.Tensor, surface: torch.Tensor, normals: torch.Tensor,
                    space: torch.Tensor) -> dict[str, torch.Tensor]:
    """latent (B, L); surface/normals (B, N, 3) on the neutral; space (B, M, 3) anywhere in the box."""
    ambient = head.config.ambient_dims
    surface = surface.requires_grad_(True)
    space = space.requires_grad_(True)
    surface_sdf, anchors = head.identity(with_zero_ambient(surface, ambient), latent)
    space_sdf, _ = head.identity(with_zero_ambient(space, ambient), latent)
    surface_gradient, space_gradient = gradient(surface_sdf, surface), gradient(space_sdf, space)
    all_gradients = torch.cat([surface_gradient, space_gradient], dim=1)
    return {
        "surface": surface_sdf.abs().mean(),
        "normals": (1 - torch.nn.functional.cosine_similarity(surface_gradient, normals, dim=-1)).mean(),
        "eikonal": ((all_gradients.norm(dim=-1) - 1) ** 2).mean(),
        "space": torch.exp(-SPACE_SHARPNESS * space_sdf.abs()).mean(),
        "symmetry": mirror_pair_distance(anchors, head.config.identity.symmetric_pairs),
        "anchors": ((anchors - head.identity.mean_anchors) ** 2).sum(-1).mean(),
        "latent": (latent ** 2).sum(-1).mean(),
    }


def expression_losses(head: NeuralHead, identity: torch.Tensor, expression: torch.Tensor, neutral: torch.Tensor,
                      posed: torch.Tensor) -> dict[str, torch.Tensor]:
    """Corresponding points (B, N, 3) on the neutral and the posed head; ``expression`` (B, E).

    Backward: the posed point must map to its neutral point (with ambient coordinates near 0) and posed surface
    points must lie on the zero level set. Forward: the neutral point must move onto its posed point.
    """
    losses = {"latent": (expression ** 2).sum(-1).mean()}
    if head.config.direction == "backward":
        canonical, ambient = head.canonicalise(posed, identity, expression)
        losses["correspondence"] = ((canonical - neutral) ** 2).sum(-1).mean()
        losses["ambient"] = (ambient ** 2).sum(-1).mean()
        half = posed.shape[1] // 2  # the first half lies on the surface (HeadMeshDataset.expression_batch)
        on_surface = torch.cat([canonical[:, :half], ambient[:, :half]], dim=-1)
        losses["posed_surface"] = head.canonical_sdf(on_surface, identity).abs().mean()
    else:
        losses["correspondence"] = ((head.deform(neutral, identity, expression) - posed) ** 2).sum(-1).mean()
    return losses


def weighted_total(losses: dict[str, torch.Tensor], weights: object) -> torch.Tensor:
    return sum(getattr(weights, name) * value for name, value in losses.items())
