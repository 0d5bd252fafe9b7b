"""Volume rendering from 25-number camera labels: rays, ray-box bounds, stratified + importance
samples, alpha compositing (EG3D's midpoint ray marcher with density softplus(sigma - 1)).

Cameras may sit anywhere around the head, so each ray is marched only where it crosses the box
[-box_warp/2, box_warp/2]^3 (EG3D's fixed near/far assume frontal faces). Rays that miss the box get
zero weight and show the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Field = Callable[[torch.Tensor], dict[str, torch.Tensor]]
"""points [B, N, 3] -> {"sigma": [B, N, 1] raw density, "features": [B, N, C]}."""


@dataclass(frozen=True)
class RenderSettings:
    stratified_samples: int = 48
    importance_samples: int = 48
    box_warp: float = 1.0
    white_background: bool = False
    density_bias: float = -1.0
    """Density is softplus(sigma + density_bias), as EG3D's softplus(sigma - 1)."""


def rays_from_labels(labels: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """labels [B, 25] -> ray origins and unit directions [B, resolution^2, 3], pixels in row-major order.

    Pixel (row i, column j) looks through normalised image point ((j + 0.5) / res, (i + 0.5) / res).
    """
    batch = labels.shape[0]
    cam2world = labels[:, :16].reshape(batch, 4, 4)
    intrinsics = labels[:, 16:25].reshape(batch, 3, 3)
    fx, fy = intrinsics[:, 0, 0], intrinsics[:, 1, 1]
    cx, cy, skew = intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 0, 1]
    centers = (torch.arange(resolution, device=labels.device, dtype=labels.dtype) + 0.5) / resolution
    v, u = torch.meshgrid(centers, centers, indexing="ij")
    u, v = u.reshape(1, -1), v.reshape(1, -1)
    y_cam = (v - cy[:, None]) / fy[:, None]
    x_cam = (u - cx[:, None] - skew[:, None] * y_cam) / fx[:, None]
    directions_cam = torch.stack([x_cam, y_cam, torch.ones_like(x_cam)], dim=-1)  # [B, N, 3]
    directions = F.normalize(directions_cam @ cam2world[:, :3, :3].transpose(1, 2), dim=-1)
    origins = cam2world[:, None, :3, 3].expand_as(directions)
    return origins, directions


def ray_box_bounds(origins: torch.Tensor, directions: torch.Tensor, half_size: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test against the cube [-half_size, half_size]^3: near, far [..., 1] and a hit mask [...]."""
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t0 = (-half_size - origins) / safe
    t1 = (half_size - origins) / safe
    near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=0.0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    hit = far > near
    far = torch.where(hit, far, near)
    return near.unsqueeze(-1), far.unsqueeze(-1), hit


def stratified_depths(near: torch.Tensor, far: torch.Tensor, count: int, jitter: bool) -> torch.Tensor:
    """count depths per ray, one in each equal bin of [near, far] (bin centres without jitter)."""
    steps = torch.arange(count, device=near.device, dtype=near.dtype)
    offsets = torch.rand(*near.shape[:-1], count, device=near.device, dtype=near.dtype) if jitter else torch.full_like(steps, 0.5)
    return near + (far - near) * (steps + offsets) / count


def importance_depths(depths: torch.Tensor, weights: torch.Tensor, count: int, jitter: bool) -> torch.Tensor:
    """Inverse-CDF samples from the coarse weights of the intervals between ``depths``, smoothed by a
    max- then an average-pool over neighbours, plus 0.01 so that empty space still gets a few samples."""
    shape = weights.shape
    flat = weights.reshape(-1, 1, shape[-1])
    smoothed = F.avg_pool1d(F.max_pool1d(F.pad(flat, (1, 1), mode="replicate"), 2, 1), 2, 1).reshape(shape)
    return sample_pdf(depths, smoothed + 0.01, count, jitter).detach()


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, count: int, jitter: bool) -> torch.Tensor:
    """Depths distributed as the piecewise-constant density ``weights`` between ``bins`` edges."""
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, dim=-1)], dim=-1)
    if jitter:
        uniform = torch.rand(*cdf.shape[:-1], count, device=cdf.device, dtype=cdf.dtype)
    else:
        uniform = torch.linspace(0.0, 1.0, count + 2, device=cdf.device, dtype=cdf.dtype)[1:-1].expand(*cdf.shape[:-1], count)
    upper = torch.searchsorted(cdf.contiguous(), uniform.contiguous(), right=True).clamp(1, cdf.shape[-1] - 1)
    lower = upper - 1
    cdf_lo, cdf_hi = cdf.gather(-1, lower), cdf.gather(-1, upper)
    bin_lo, bin_hi = bins.gather(-1, lower), bins.gather(-1, upper)
    span = torch.where(cdf_hi - cdf_lo < 1e-5, torch.ones_like(cdf_lo), cdf_hi - cdf_lo)
    return bin_lo + (uniform - cdf_lo) / span * (bin_hi - bin_lo)


def composite(depths: torch.Tensor, sigma: torch.Tensor, features: torch.Tensor, density_bias: float) -> dict[str, torch.Tensor]:
    """March sorted samples [..., S]: midpoint values, alpha = 1 - exp(-density * delta)."""
    deltas = depths[..., 1:] - depths[..., :-1]
    depth_mid = 0.5 * (depths[..., 1:] + depths[..., :-1])
    sigma_mid = 0.5 * (sigma[..., 1:] + sigma[..., :-1])
    features_mid = 0.5 * (features[..., 1:, :] + features[..., :-1, :])
    density = F.softplus(sigma_mid + density_bias)
    alpha = 1.0 - torch.exp(-density * deltas)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha + 1e-10], dim=-1), dim=-1)[..., :-1]
    weights = alpha * transmittance
    accumulated = weights.sum(dim=-1, keepdim=True)
    expected_depth = (weights * depth_mid).sum(dim=-1, keepdim=True) / accumulated.clamp(min=1e-8)
    depth = torch.where(accumulated > 1e-6, expected_depth, depths[..., -1:])
    depth = torch.minimum(torch.maximum(depth, depths[..., :1]), depths[..., -1:])
    return {
        "features": (weights.unsqueeze(-1) * features_mid).sum(dim=-2),
        "depth": depth,
        "weights": weights,
        "accumulated": accumulated,
    }


def query_along_rays(field: Field, origins: torch.Tensor, directions: torch.Tensor, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate the field at depths [B, R, S] along rays [B, R, 3]: sigma [B, R, S], features [B, R, S, C]."""
    batch, rays, samples = depths.shape
    points = origins.unsqueeze(-2) + directions.unsqueeze(-2) * depths.unsqueeze(-1)
    out = field(points.reshape(batch, rays * samples, 3))
    return out["sigma"].reshape(batch, rays, samples), out["features"].reshape(batch, rays, samples, -1)


def render_rays(field: Field, origins: torch.Tensor, directions: torch.Tensor, settings: RenderSettings, jitter: bool) -> dict[str, torch.Tensor]:
    """Two-pass rendering of rays [B, R, 3]: features [B, R, C] (background composited), depth, weights."""
    near, far, _ = ray_box_bounds(origins, directions, settings.box_warp / 2)
    coarse_depths = stratified_depths(near, far, settings.stratified_samples, jitter)
    coarse_sigma, coarse_features = query_along_rays(field, origins, directions, coarse_depths)
    depths, sigma, features = coarse_depths, coarse_sigma, coarse_features
    if settings.importance_samples > 0:
        coarse = composite(coarse_depths, coarse_sigma, coarse_features, settings.density_bias)
        fine_depths = importance_depths(coarse_depths, coarse["weights"], settings.importance_samples, jitter)
        fine_sigma, fine_features = query_along_rays(field, origins, directions, fine_depths)
        depths, order = torch.sort(torch.cat([coarse_depths, fine_depths], dim=-1), dim=-1)
        sigma = torch.cat([coarse_sigma, fine_sigma], dim=-1).gather(-1, order)
        merged = torch.cat([coarse_features, fine_features], dim=-2)
        features = merged.gather(-2, order.unsqueeze(-1).expand(-1, -1, -1, merged.shape[-1]))
    result = composite(depths, sigma, features, settings.density_bias)
    if settings.white_background:
        result["features"] = result["features"] + (1.0 - result["accumulated"])
    return result
