"""The ControlNet input of the deferred renderer: which channels, in which order, in which range.

This is the one place that defines it; the layout is stored in every checkpoint's config so that
training and rendering can never disagree. Per pixel, in order:

    index  name                       source pass (condition bundle)     value fed to the network
    0      depth                      depth.npy, camera z, head units    near..far -> [-1, 1]; -1 outside the mask
    1-3    canonical_x/y/z            canonical.npy, rest-pose position  [-0.5, 0.5] -> [-1, 1]; -1 outside the mask
    4-6    normal_x/y/z               normal.npy, unit, camera axes      [-1, 1] as is; 0 outside the mask
    7-     triplane_{xy,xz,yz}_<k>    learned features at the canonical  learned (init N(0, 1)); 0 outside the mask
           position, three planes CONCATENATED, ``triplane_channels`` each

With a neural-head proxy that has ambient coordinates (``ambient_dims`` > 0, an NPHM proxy: 2), the
layout is DiffusionAvatars' full one: ``ambient_<k>`` channels (ambient.npy, [-ambient_range,
ambient_range] -> [-1, 1], -1 outside the mask) follow the normals, and after the tri-plane features come
``ambient_feature_<k>``: a learned 2-D feature map looked up at the ambient coordinates
(``ambient_feature_channels``; 16 + 16 x 3 + 2 + 3 + 3 + 1 = 73 channels at the defaults).

The mask is not a channel: it only zeroes the background (as in DiffusionAvatars). Depth is
clipped into [near, far]; the defaults bracket a head of size 1 seen from EG3D's orbit radius 2.7.
"""

from __future__ import annotations

from dataclasses import dataclass

GEOMETRY_CHANNEL_NAMES: tuple[str, ...] = (
    "depth",
    "canonical_x", "canonical_y", "canonical_z",
    "normal_x", "normal_y", "normal_z",
)
TRIPLANE_PLANES: tuple[str, ...] = ("xy", "xz", "yz")
BACKGROUND_DEPTH = -1.0
BACKGROUND_CANONICAL = -1.0
BACKGROUND_AMBIENT = -1.0


@dataclass(frozen=True)
class ChannelLayout:
    depth_near: float = 1.7
    """Camera-space depth (head units) mapped to -1."""
    depth_far: float = 3.7
    """Camera-space depth (head units) mapped to +1."""
    triplane_channels: int = 16
    """Feature channels per plane; the three planes are concatenated, so 3x this many in the input."""
    ambient_dims: int = 0
    """Ambient coordinates of the proxy (0: a rig; 2: an NPHM proxy, DiffusionAvatars' layout)."""
    ambient_range: float = 0.2
    """Ambient coordinates in [-range, range] map to [-1, 1] (DiffusionAvatars' encoding)."""
    ambient_feature_channels: int = 16
    """Channels of the learned ambient feature map (only with ``ambient_dims`` > 0)."""

    def __post_init__(self) -> None:
        if not self.depth_far > self.depth_near:
            raise ValueError(f"depth_far ({self.depth_far}) must exceed depth_near ({self.depth_near})")
        if self.triplane_channels < 0 or self.ambient_dims < 0 or self.ambient_feature_channels < 0:
            raise ValueError("triplane_channels, ambient_dims and ambient_feature_channels must be >= 0")
        if self.ambient_range <= 0:
            raise ValueError("ambient_range must be > 0")
        if self.ambient_dims not in (0, 2):
            raise ValueError(f"ambient_dims must be 0 (a rig) or 2 (an NPHM proxy; the ambient feature map is 2-D), got {self.ambient_dims}")

    @property
    def ambient_features(self) -> int:
        """Learned ambient-map channels in the input (0 without ambient coordinates)."""
        return self.ambient_feature_channels if self.ambient_dims else 0

    def names(self) -> list[str]:
        ambient = [f"ambient_{k}" for k in range(self.ambient_dims)]
        features = [f"triplane_{plane}_{k}" for plane in TRIPLANE_PLANES for k in range(self.triplane_channels)]
        ambient_features = [f"ambient_feature_{k}" for k in range(self.ambient_features)]
        return list(GEOMETRY_CHANNEL_NAMES) + ambient + features + ambient_features

    @property
    def geometry_count(self) -> int:
        return len(GEOMETRY_CHANNEL_NAMES) + self.ambient_dims

    @property
    def count(self) -> int:
        """Channels of the ControlNet input (geometry [+ ambient] + tri-plane features [+ ambient features])."""
        return self.geometry_count + len(TRIPLANE_PLANES) * self.triplane_channels + self.ambient_features


def encode_geometry(layout: ChannelLayout, depth, canonical, normal, mask, ambient=None):
    """Geometry channels in the documented order and ranges.

    Shapes: depth (B, H, W), canonical (B, H, W, 3), normal (B, H, W, 3), mask (B, H, W) in {0, 1},
    ambient (B, H, W, ambient_dims) when the layout has ambient coordinates.
    Returns (B, geometry_count, H, W).
    """
    import torch

    inside = mask.unsqueeze(1) > 0.5
    scaled_depth = (depth.unsqueeze(1) - layout.depth_near) / (layout.depth_far - layout.depth_near) * 2.0 - 1.0
    depth_channel = torch.where(inside, scaled_depth.clamp(-1.0, 1.0), torch.full_like(scaled_depth, BACKGROUND_DEPTH))
    scaled_canonical = (canonical.permute(0, 3, 1, 2) * 2.0).clamp(-1.0, 1.0)
    canonical_channels = torch.where(inside, scaled_canonical, torch.full_like(scaled_canonical, BACKGROUND_CANONICAL))
    normal_channels = torch.where(inside, normal.permute(0, 3, 1, 2).clamp(-1.0, 1.0), torch.zeros_like(scaled_canonical))
    channels = [depth_channel, canonical_channels, normal_channels]
    if layout.ambient_dims:
        if ambient is None or ambient.shape[-1] != layout.ambient_dims:
            raise ValueError(f"this layout needs {layout.ambient_dims} ambient coordinates per pixel (the proxy's ambient pass)")
        scaled_ambient = (ambient.permute(0, 3, 1, 2) / layout.ambient_range).clamp(-1.0, 1.0)
        channels.append(torch.where(inside, scaled_ambient, torch.full_like(scaled_ambient, BACKGROUND_AMBIENT)))
    return torch.cat(channels, dim=1)
