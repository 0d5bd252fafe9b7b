"""A similarity transform (scale, rotation, translation) as optimisable parameters: target -> model space.

``model = exp(log_scale) * R(rotation) @ target + translation``, the rotation as an axis-angle vector
(Rodrigues' formula, smooth at zero), so that a frame's pose is 7 numbers gradient descent can move.
"""

from __future__ import annotations

import torch


def rotation_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(3,) axis-angle -> (3, 3) rotation."""
    angle = torch.sqrt((axis_angle ** 2).sum() + 1e-12)
    kx, ky, kz = axis_angle / angle
    zero = torch.zeros((), dtype=axis_angle.dtype, device=axis_angle.device)
    cross = torch.stack([torch.stack([zero, -kz, ky]), torch.stack([kz, zero, -kx]), torch.stack([-ky, kx, zero])])
    identity = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return identity + torch.sin(angle) * cross + (1 - torch.cos(angle)) * cross @ cross


class Similarity(torch.nn.Module):
    def __init__(self, scale: float, translation, rotation=(0.0, 0.0, 0.0)) -> None:
        super().__init__()
        self.log_scale = torch.nn.Parameter(torch.tensor(float(scale)).log())
        self.rotation = torch.nn.Parameter(torch.tensor(rotation, dtype=torch.float32))
        self.translation = torch.nn.Parameter(torch.tensor(translation, dtype=torch.float32))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 3) target points -> model space."""
        return self.scale * points @ rotation_matrix(self.rotation).T + self.translation

    def to_json(self) -> dict:
        return {"scale": float(self.scale.detach()), "rotation": self.rotation.detach().tolist(), "translation": self.translation.detach().tolist()}
