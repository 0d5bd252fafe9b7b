"""Fitting (tracking) NPHM to target geometry: identity once, expression + similarity per frame.

1. The identity code is fitted jointly with the expressions and poses of the first ``identity_frames``
   frames (a neutral-ish start helps; any frames work).
2. Every later frame starts from the previous frame's expression and pose (warm start) and fits only those.

The data term is one-sided: each observed point should lie on the posed head's surface (|posed SDF| for a
backward model; the distance to the deformed canonical surface for a forward one). Unseen parts of the head
are not penalised, so depth from a few cameras (partial observations) fits as well as whole meshes, and a
robust (Cauchy) penalty keeps stray points (background, hair fringe) from dragging the head. Latent
regularisers keep the codes near the model's prior; the scale is kept near its start (without it, shrinking
the data onto one spot of the surface would be a trivial fit).

The fit error per frame is the mean distance of the frame's points to the fitted surface, in target units,
in millimetres (``mm_per_unit``) and as a fraction of the head's height.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...progress import Progress, SilentProgress
from .fit_targets import FrameTarget
from .model import NeuralHead
from .similarity import Similarity

CANONICAL_SURFACE_POINTS = 8000
"""Forward models: canonical surface points the deformation moves (dense enough that point spacing stays under the fit error)."""
BOX_FILL = 0.8
"""As training's normalisation: the head fills this fraction of the model box (so its height is known)."""


@dataclass
class FitSettings:
    identity_frames: int = 1
    identity_steps: int = 400
    frame_steps: int = 100
    points_per_step: int = 1000
    latent_lr: float = 1e-2
    pose_lr: float = 3e-3
    identity_regulariser: float = 1e-4
    expression_regulariser: float = 1e-4
    scale_prior: float = 1.0
    robust_scale: float = 0.02
    """Cauchy scale in model units (the head is about 1 unit tall)."""
    surface_resolution: int = 48
    """Forward models: marching-cubes resolution of the canonical surface the deformation moves."""
    mm_per_unit: float = 1000.0
    """Millimetres per target unit (1000 for a rig in metres, Blender's default)."""
    seed: int = 0


@dataclass
class FrameFit:
    name: str
    expression: list[float]
    similarity: dict
    error: float
    error_mm: float
    error_fraction: float
    seconds: float

    def to_json(self) -> dict:
        return {"name": self.name, "error": self.error, "error_mm": self.error_mm, "error_fraction": self.error_fraction,
                "seconds": self.seconds, **self.similarity, "expression": self.expression}


@dataclass
class FitResult:
    identity: torch.Tensor
    frames: list[FrameFit] = field(default_factory=list)


def initial_similarity(points: np.ndarray, head: NeuralHead) -> Similarity:
    """Centre the frame's bounding box in the model box, filling it as the training heads did."""
    low, high = points.min(axis=0), points.max(axis=0)
    box_min, box_max = np.asarray(head.config.box_min), np.asarray(head.config.box_max)
    scale = float(np.min((box_max - box_min) * BOX_FILL / np.maximum(high - low, 1e-9)))
    translation = (box_min + box_max) / 2 - (low + high) / 2 * scale
    return Similarity(scale, translation.tolist())


def head_height(head: NeuralHead) -> float:
    """The model-space height of a head (training fills the box to ``BOX_FILL``; NPHM's heads are the same size)."""
    return (head.config.box_max[1] - head.config.box_min[1]) * BOX_FILL


def cauchy(residual: torch.Tensor, scale: float) -> torch.Tensor:
    return scale ** 2 * torch.log1p((residual / scale) ** 2)


class NphmFitter:
    def __init__(self, head: NeuralHead, settings: FitSettings, prior_identity: torch.Tensor | None = None) -> None:
        self.head = head.eval().requires_grad_(False)
        self.device = next(head.parameters()).device
        self.settings = settings
        self.generator = torch.Generator().manual_seed(settings.seed)
        start = prior_identity if prior_identity is not None else torch.zeros(head.identity_dim)
        self.identity = torch.nn.Parameter(start.clone().float().view(1, -1).to(self.device))
        self._canonical_surface: torch.Tensor | None = None

    # ----------------------------------------------------------------- geometry
    def surface_distance(self, points: torch.Tensor, expression: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """(N, 3) model-space points -> their distance to the posed head's surface (N,)."""
        if self.head.config.direction == "backward":
            return self.head.posed_sdf(points[None], identity, expression)[0].abs()
        posed = self.head.deform(self._projected_canonical_surface(identity)[None], identity, expression)[0]
        return torch.cdist(points, posed).min(dim=1).values

    def refresh_canonical_surface(self) -> None:
        """Forward models: canonical surface points of the current identity (marching cubes), re-projected on
        the SDF each step so that the identity code gets gradients."""
        from .proxy_mesh import canonical_mesh

        if self.head.config.direction == "forward":
            vertices, _ = canonical_mesh(self.head, self.identity.detach(), self.settings.surface_resolution)
            pick = torch.randperm(len(vertices), generator=self.generator)[:CANONICAL_SURFACE_POINTS]
            self._canonical_surface = torch.from_numpy(vertices[pick.numpy()]).float().to(self.device)

    def _projected_canonical_surface(self, identity: torch.Tensor) -> torch.Tensor:
        surface = self._canonical_surface.clone().requires_grad_(True)
        with torch.enable_grad():
            sdf = self.head.canonical_sdf(surface[None], identity)[0]
            normal = torch.autograd.grad(sdf.sum(), surface, create_graph=True)[0]
        return surface - (sdf / (normal ** 2).sum(-1).clamp_min(1e-6))[:, None] * normal

    # ----------------------------------------------------------------- objective
    def _data_term(self, target: torch.Tensor, similarity: Similarity, expression: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        pick = torch.randint(len(target), (min(self.settings.points_per_step, len(target)),), generator=self.generator).to(target.device)
        distance = self.surface_distance(similarity(target[pick]), expression, identity)
        return cauchy(distance, self.settings.robust_scale).mean()

    def _optimise(self, frames: list[tuple[torch.Tensor, Similarity, torch.nn.Parameter]], steps: int, fit_identity: bool,
                  scale_anchor: list[float], progress: Progress, start: float, end: float, stage: str) -> None:
        settings = self.settings
        groups = [{"params": [expression for _, _, expression in frames], "lr": settings.latent_lr},
                  {"params": [p for _, similarity, _ in frames for p in similarity.parameters()], "lr": settings.pose_lr}]
        if fit_identity:
            groups.append({"params": [self.identity], "lr": settings.latent_lr})
        optimiser = torch.optim.Adam(groups)
        for step in range(steps):
            if fit_identity and step % 50 == 0:
                self.refresh_canonical_surface()
            loss = torch.zeros((), device=self.device)
            for (target, similarity, expression), anchor in zip(frames, scale_anchor):
                loss = loss + self._data_term(target, similarity, expression, self.identity)
                loss = loss + settings.expression_regulariser * (expression ** 2).sum()
                loss = loss + settings.scale_prior * (similarity.log_scale - float(np.log(anchor))) ** 2 * settings.robust_scale ** 2
            if fit_identity:
                loss = loss + settings.identity_regulariser * (self.identity ** 2).sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            progress.update(start + (end - start) * (step + 1) / steps, stage)

    @torch.no_grad()
    def frame_error(self, target: torch.Tensor, similarity: Similarity, expression: torch.Tensor) -> tuple[float, float, float]:
        """Mean distance of the frame's points to the fitted surface: target units, millimetres, fraction of head height."""
        distances = torch.cat([self.surface_distance(similarity(chunk), expression, self.identity)
                               for chunk in target.split(4096)])
        error = float(distances.mean() / similarity.scale)
        return error, error * self.settings.mm_per_unit, float(distances.mean()) / head_height(self.head)

    # ----------------------------------------------------------------- tracking
    def fit(self, frames: list[FrameTarget], progress: Progress | None = None, done: list[FrameFit] | None = None,
            on_frame=None) -> FitResult:
        """Fit every frame; ``done`` (fits of the first frames, from an earlier run with this identity) are kept."""
        progress = progress or SilentProgress()
        settings = self.settings
        result = FitResult(self.identity.detach(), list(done or []))
        targets = [torch.from_numpy(frame.points).to(self.device) for frame in frames]
        total = max(len(frames), 1)
        if not result.frames:
            count = min(max(settings.identity_frames, 1), len(frames))
            started = time.perf_counter()
            joint = [(targets[i], initial_similarity(frames[i].points, self.head).to(self.device),
                      torch.nn.Parameter(torch.zeros(1, self.head.expression_dim, device=self.device))) for i in range(count)]
            anchors = [float(similarity.scale.detach()) for _, similarity, _ in joint]
            self._optimise(joint, settings.identity_steps, True, anchors, progress, 0.0, count / total,
                           f"fitting identity on frames 1-{count}")
            seconds = (time.perf_counter() - started) / count
            for index, (target, similarity, expression) in enumerate(joint):
                result.frames.append(self._frame_fit(frames[index].name, target, similarity, expression, seconds))
                if on_frame:
                    on_frame(result)
        self.refresh_canonical_surface()
        while len(result.frames) < len(frames):
            index = len(result.frames)
            previous = result.frames[-1]
            started = time.perf_counter()
            similarity = Similarity(previous.similarity["scale"], previous.similarity["translation"],
                                    previous.similarity["rotation"]).to(self.device)
            expression = torch.nn.Parameter(torch.tensor([previous.expression], dtype=torch.float32, device=self.device))
            self._optimise([(targets[index], similarity, expression)], settings.frame_steps, False, [previous.similarity["scale"]],
                           progress, index / total, (index + 1) / total, f"fitting frame {index + 1}/{len(frames)}")
            result.frames.append(self._frame_fit(frames[index].name, targets[index], similarity, expression, time.perf_counter() - started))
            if on_frame:
                on_frame(result)
        result.identity = self.identity.detach()
        return result

    def _frame_fit(self, name: str, target: torch.Tensor, similarity: Similarity, expression: torch.Tensor, seconds: float) -> FrameFit:
        error, error_mm, fraction = self.frame_error(target, similarity, expression.detach())
        return FrameFit(name, expression.detach()[0].tolist(), similarity.to_json(), error, error_mm, fraction, seconds)


def prior_identity(model_dir: str | Path) -> torch.Tensor | None:
    """The mean training identity code saved beside a model (``latents.safetensors``), the usual starting point."""
    from safetensors.torch import load_file

    from .official import LATENTS_NAME

    path = Path(model_dir) / LATENTS_NAME
    if not path.is_file():
        return None
    codes = load_file(str(path)).get("identity")
    return codes.mean(dim=0) if codes is not None and len(codes) else None
