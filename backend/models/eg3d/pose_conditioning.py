"""The discriminator's pose label: StyleAvatar3D's coarse-to-fine label, or plain EG3D camera labels.

Coarse-to-fine (mode ``"coarse_to_fine"``, the default): views are binned by yaw and pitch.

* fine label: one-hot of ``fine_yaw_bins`` yaw bins over 360° ‖ one-hot of ``fine_pitch_bins``
  pitch bins over ±``pitch_range_degrees``;
* coarse label: the same with ``coarse_yaw_bins`` / ``coarse_pitch_bins`` (4 yaw sectors centred on
  front, left, back, right);
* the label given to D is fine ‖ coarse with one of the two zeroed per sample: a *confident* view
  (|yaw| <= ``confident_yaw_degrees`` or dataset pose confidence >= ``confident_pose_confidence``)
  keeps the fine label with probability ``p_high``, any other view with ``p_low``.

The paper publishes none of these numbers; the defaults below are our choice: 15° yaw bins and
10° pitch bins (its fine grid), 4 yaw sectors (its "four basic directions"), p_high 0.9, p_low 0.2.
Fakes are labelled by the same rule from the dataset item whose camera rendered them, so D sees
the same mix of label types for real and fake images.

Mode ``"camera"`` is EG3D's conditioning (the 25-number label, optional Gaussian noise);
``"none"`` makes D unconditional.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from blender_addon.formats.cameras import LABEL_LENGTH

POSE_CONDITIONING_MODES = ("coarse_to_fine", "camera", "none")


@dataclass
class PoseConditioningConfig:
    mode: str = "coarse_to_fine"
    fine_yaw_bins: int = 24
    fine_pitch_bins: int = 6
    coarse_yaw_bins: int = 4
    coarse_pitch_bins: int = 1
    pitch_range_degrees: float = 30.0
    confident_yaw_degrees: float = 45.0
    confident_pose_confidence: float = 0.8
    p_high: float = 0.9
    p_low: float = 0.2
    camera_noise: float = 0.0
    """Std of Gaussian noise on camera labels (mode "camera"), EG3D's disc_c_noise."""

    def __post_init__(self) -> None:
        if self.mode not in POSE_CONDITIONING_MODES:
            raise ValueError(f"pose conditioning mode must be one of {POSE_CONDITIONING_MODES}, got {self.mode!r}")
        for name in ("fine_yaw_bins", "fine_pitch_bins", "coarse_yaw_bins", "coarse_pitch_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("p_high", "p_low"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")

    @property
    def label_dim(self) -> int:
        if self.mode == "camera":
            return LABEL_LENGTH
        if self.mode == "none":
            return 0
        return self.fine_yaw_bins + self.fine_pitch_bins + self.coarse_yaw_bins + self.coarse_pitch_bins


def yaw_bin(yaw_degrees: torch.Tensor, bins: int) -> torch.Tensor:
    """Bins of equal width over 360°, bin 0 centred on yaw 0 (the front view)."""
    width = 360.0 / bins
    return torch.floor(torch.remainder(yaw_degrees + width / 2, 360.0) / width).long().clamp(0, bins - 1)


def pitch_bin(pitch_degrees: torch.Tensor, bins: int, pitch_range: float) -> torch.Tensor:
    """Bins of equal width over [-pitch_range, pitch_range]; steeper views go to the end bins."""
    fraction = (pitch_degrees + pitch_range) / (2 * pitch_range)
    return torch.floor(fraction * bins).long().clamp(0, bins - 1)


def binned_label(yaw: torch.Tensor, pitch: torch.Tensor, yaw_bins: int, pitch_bins: int, pitch_range: float) -> torch.Tensor:
    return torch.cat([
        F.one_hot(yaw_bin(yaw, yaw_bins), yaw_bins),
        F.one_hot(pitch_bin(pitch, pitch_bins, pitch_range), pitch_bins),
    ], dim=1).float()


def discriminator_labels(config: PoseConditioningConfig, camera_labels: torch.Tensor, yaw: torch.Tensor,
                         pitch: torch.Tensor, pose_confidence: torch.Tensor,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """The label D is conditioned on, [B, config.label_dim], for images taken from these cameras."""
    if config.mode == "none":
        return camera_labels.new_zeros(camera_labels.shape[0], 0)
    if config.mode == "camera":
        noise = _draw(torch.randn, camera_labels.shape, generator, camera_labels.device) if config.camera_noise > 0 else 0.0
        return camera_labels.float() + noise * config.camera_noise
    fine = binned_label(yaw, pitch, config.fine_yaw_bins, config.fine_pitch_bins, config.pitch_range_degrees)
    coarse = binned_label(yaw, pitch, config.coarse_yaw_bins, config.coarse_pitch_bins, config.pitch_range_degrees)
    wrapped_yaw = torch.remainder(yaw + 180.0, 360.0) - 180.0
    confident = (wrapped_yaw.abs() <= config.confident_yaw_degrees) | (pose_confidence >= config.confident_pose_confidence)
    keep_fine_probability = torch.where(confident, torch.full_like(yaw, config.p_high), torch.full_like(yaw, config.p_low))
    draws = _draw(torch.rand, yaw.shape, generator, yaw.device)
    keep_fine = (draws < keep_fine_probability).float().unsqueeze(1)
    return torch.cat([fine * keep_fine, coarse * (1.0 - keep_fine)], dim=1).to(camera_labels.device)


def _draw(sample, shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Random numbers from ``generator`` on its own device (the trainer's is on the CPU), moved to ``device``:
    the same draws whatever device trains."""
    source = generator.device if generator is not None else device
    return sample(shape, generator=generator, device=source).to(device)
