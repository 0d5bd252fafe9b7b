"""Every EG3D training option in one place, with the presets ``tiny``, ``small`` and ``full``.

``full`` is EG3D's FFHQ-512 setting (neural rendering 128, batch 32, R1 gamma 1) adapted to avatar
data: camera conditioning of G off, ray-box bounds for 360° cameras, coarse-to-fine D labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from backend.models.eg3d.discriminator import DiscriminatorConfig
from backend.models.eg3d.generator import GeneratorConfig, tiny_generator_config
from backend.models.eg3d.pose_conditioning import PoseConditioningConfig
from blender_addon.formats.errors import FormatError


@dataclass
class TrainingConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator_channel_base: int = 32768
    discriminator_channel_max: int = 512
    discriminator_cmap_dim: int = 512
    pose: PoseConditioningConfig = field(default_factory=PoseConditioningConfig)
    batch_size: int = 32
    """Images per step over all processes (each of N processes takes batch_size / N)."""
    total_images: int = 25_000_000
    g_lr: float = 0.0025
    d_lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 1.0
    r1_interval: int = 16
    density_reg: float = 0.25
    density_reg_interval: int = 4
    density_reg_noise: float = 0.004
    style_mixing_prob: float = 0.0
    gpc_swap_prob: float = 0.5
    """With ``generator.pose_conditioning``: chance that G is conditioned on another sample's camera."""
    neural_rendering_initial: int | None = 64
    """Start rendering at this resolution and fade linearly to generator.neural_rendering_resolution
    over ``neural_rendering_fade_images`` (EG3D: 64 -> 128 over 1M images); None renders at full size."""
    neural_rendering_fade_images: int = 1_000_000
    blur_sigma: float = 10.0
    blur_fade_images: int = 200_000
    ema_half_life_images: int = 10_000
    ema_rampup: float = 0.05
    mirror: bool = True
    tick_images: int = 4_000
    snapshot_ticks: int = 50
    grid_seeds: int = 4
    grid_yaws: tuple[float, ...] = (0.0, 90.0, 180.0, -90.0)
    mixed_precision: bool = True
    """bf16 autocast for G and D forward passes on CUDA; CPU always runs fp32."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "total_images", "r1_interval", "density_reg_interval", "tick_images", "snapshot_ticks"):
            if getattr(self, name) < 1:
                raise FormatError(name, f"must be >= 1, got {getattr(self, name)}")


def full_config() -> TrainingConfig:
    return TrainingConfig()


def small_config() -> TrainingConfig:
    """256² output, neural rendering 64, half-width networks: a single-GPU run of a day or two."""
    generator = replace(GeneratorConfig(), plane_resolution=128, channel_base=16384, channel_max=256,
                        neural_rendering_resolution=64, output_resolution=256, sr_channel_base=32768, sr_channel_max=128)
    return replace(TrainingConfig(), generator=generator, neural_rendering_initial=None, discriminator_channel_base=16384, discriminator_channel_max=256,
                   discriminator_cmap_dim=256, batch_size=16, total_images=5_000_000, r1_gamma=5.0,
                   blur_fade_images=100_000, ema_half_life_images=5_000)


def tiny_config() -> TrainingConfig:
    """32² output for tests and smoke runs on CPU (seconds per hundred images)."""
    return replace(TrainingConfig(), generator=tiny_generator_config(), neural_rendering_initial=None, discriminator_channel_base=512,
                   discriminator_channel_max=32, discriminator_cmap_dim=32, batch_size=4, total_images=400,
                   g_lr=0.0025, d_lr=0.002, r1_gamma=1.0, r1_interval=4, density_reg_interval=4,
                   blur_sigma=1.0, blur_fade_images=100, ema_half_life_images=40, tick_images=100, snapshot_ticks=1,
                   grid_seeds=2, mixed_precision=False)


PRESETS = {"tiny": tiny_config, "small": small_config, "full": full_config}


def preset(name: str) -> TrainingConfig:
    if name not in PRESETS:
        raise FormatError("config", f"unknown preset {name!r}", f"use one of: {', '.join(PRESETS)}")
    return PRESETS[name]()


def configure(preset_name: str, *, total_images: int | None = None, batch_size: int | None = None,
              r1_gamma: float | None = None, pose_conditioning: str | None = None, p_high: float | None = None,
              p_low: float | None = None, tick_images: int | None = None, seed: int | None = None) -> TrainingConfig:
    """A preset with the options people change most often replaced (None keeps the preset's value).
    CLI flags and job params map one to one onto these arguments."""
    top = {"total_images": total_images, "batch_size": batch_size, "r1_gamma": r1_gamma,
           "tick_images": tick_images, "seed": seed}
    config = replace(preset(preset_name), **{key: value for key, value in top.items() if value is not None})
    pose = {"mode": pose_conditioning, "p_high": p_high, "p_low": p_low}
    try:
        pose_config = replace(config.pose, **{key: value for key, value in pose.items() if value is not None})
    except ValueError as error:
        raise FormatError("pose", str(error)) from None
    return replace(config, pose=pose_config)


def discriminator_config(config: TrainingConfig) -> DiscriminatorConfig:
    return DiscriminatorConfig(resolution=config.generator.output_resolution, label_dim=config.pose.label_dim,
                               channel_base=config.discriminator_channel_base, channel_max=config.discriminator_channel_max,
                               cmap_dim=config.discriminator_cmap_dim)


def follow_dataset_background(config: TrainingConfig, background: str) -> TrainingConfig:
    """The generator renders on the colour the dataset's images were matted onto ('keep': unchanged)."""
    if background not in ("black", "white"):
        return config
    return replace(config, generator=replace(config.generator, white_background=background == "white"))
