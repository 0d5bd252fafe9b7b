"""The deferred diffusion renderer (DiffusionAvatars): proxy passes of a rigged head -> image.

The renderer's input is the proxy's geometry plus learnable tri-plane features looked up at
canonical coordinates (see channels.py); the rig's expression code becomes a few tokens that the
denoising UNet attends to (expression_attention.py). What denoises depends on the ``prior``:

- ``'latent-diffusion'`` (the method, latent_diffusion.py): a frozen Stable Diffusion base steered by a
  trainable ControlNet, in the base's VAE latent space;
- ``'none'`` (the paper's "w/o LDM prior" ablation, scratch.py): a small UNet trained from scratch in
  pixel space, the embedded conditions concatenated with the noisy image; no downloaded weights.

This module holds what both share: the config, the condition and expression inputs, the training
loss and the sampler. Sampling follows the paper: DDPM ancestral steps over trailing timesteps of a
zero-terminal-SNR schedule, 20 steps, no classifier-free guidance, and ONE seeded initial latent plus
ONE fixed noise per step shared by every frame and view, so that an animation does not flicker
(``sampler='ddim'`` is the deterministic alternative, with no per-step noise at all).
``mode='direct'`` is the paper's "w/o diffusion" ablation (direct.py), with either prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...errors import InvalidInput
from .ambient_features import AmbientFeatures
from .channels import ChannelLayout, encode_geometry
from .conditions import ConditionTensors
from .expression_attention import ExpressionEncoder
from .priors import PRIORS
from .scratch_unet import ScratchUNetConfig
from .triplane_features import TriplaneFeatures

CHECKPOINT_KIND = "deferred-renderer"
MODES = ("diffusion", "direct")
PREDICTION_TYPES = ("epsilon", "v_prediction")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
SAMPLERS = ("ddpm", "ddim")


@dataclass
class DeferredRendererConfig:
    expression_names: tuple[str, ...]
    """Layout of the expression code (blender_addon/formats/expression.py), fixed at training."""
    base: str = ""
    """Model-store name of the frozen Stable Diffusion 1.x/2.x base (prior 'latent-diffusion' only)."""
    prior: str = "latent-diffusion"
    """'latent-diffusion': ControlNet on a frozen base; 'none': a UNet trained from scratch in pixel space."""
    scratch_unet: ScratchUNetConfig | None = None
    """The from-scratch UNet's architecture (prior 'none' only)."""
    mode: str = "diffusion"
    channels: ChannelLayout = field(default_factory=ChannelLayout)
    triplane_resolution: int = 512
    expression_tokens: int = 4
    prediction_type: str = "v_prediction"
    zero_terminal_snr: bool = True
    timestep_spacing: str = "trailing"
    num_inference_steps: int = 20
    sampler: str = "ddpm"
    """'ddpm': ancestral sampling with fixed per-step noise (the paper's); 'ddim': deterministic."""
    seed: int = 181998
    """Seeds the initial latent and the per-step noise shared by all frames and views."""
    prompt: str = ""

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if self.prior == "latent-diffusion" and (not self.base or self.scratch_unet is not None):
            raise ValueError("a latent-diffusion prior needs a base model and takes no scratch_unet")
        if self.prior == "none" and (self.base or self.scratch_unet is None):
            raise ValueError("a renderer without prior takes no base model and needs a scratch_unet architecture")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {self.timestep_spacing!r}")
        if self.zero_terminal_snr and self.prediction_type == "epsilon":
            raise ValueError("a zero-terminal-SNR schedule needs prediction_type 'v_prediction' "
                             "(epsilon carries no information about the image at the last step)")
        if not 1 <= self.num_inference_steps <= 1000:
            raise ValueError("num_inference_steps must lie in [1, 1000]")
        if self.expression_tokens < 1 or self.triplane_resolution < 2:
            raise ValueError("expression_tokens must be >= 1 and triplane_resolution >= 2")


class DeferredRenderer(nn.Module):
    """What both priors share; a subclass per prior supplies the denoiser and the image <-> latent mapping.

    Trainable here: ``triplanes`` (and ``ambient_features``) and ``expression_encoder``; the subclass adds its networks.
    """

    size_multiple: int
    """Image sides must be multiples of this."""
    fingerprint: dict[str, Any] | None = None
    """Architecture facts of a frozen base the weights depend on (None: no frozen base)."""
    scheduler: Any
    """The diffusers scheduler that adds noise in training and samples (configured by ``sampling_scheduler``)."""

    def __init__(self, config: DeferredRendererConfig) -> None:
        super().__init__()
        self.config = config

    def add_condition_modules(self, context_width: int) -> None:
        """The learned features and the expression encoder (tokens ``context_width`` wide); call under the seed."""
        config = self.config
        self.triplanes = TriplaneFeatures(config.channels.triplane_channels, config.triplane_resolution)
        if config.channels.ambient_features:
            self.ambient_features = AmbientFeatures(config.channels.ambient_features, config.triplane_resolution,
                                                    config.channels.ambient_range)
        self.expression_encoder = ExpressionEncoder(len(config.expression_names), config.expression_tokens, context_width)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, control: torch.Tensor, expression_tokens: torch.Tensor) -> torch.Tensor:
        """The denoiser's output (the configured prediction target) for noisy ``latents`` at ``timesteps``."""
        raise NotImplementedError

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> what the denoiser works on."""
        raise NotImplementedError

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The inverse of ``encode_images``: images in [-1, 1]."""
        raise NotImplementedError

    def latent_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        raise NotImplementedError

    def network_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter but the learned feature maps."""
        raise NotImplementedError

    def place(self, device, dtype=torch.float32) -> "DeferredRenderer":
        """Move every part (trainable and frozen) to ``device``/``dtype``."""
        return self.to(device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return self.triplanes.planes.device

    @property
    def dtype(self) -> torch.dtype:
        return self.triplanes.planes.dtype

    def check_expression(self, codes: torch.Tensor) -> None:
        expected = len(self.config.expression_names)
        if codes.ndim != 2 or codes.shape[1] != expected:
            raise InvalidInput(
                f"expression codes have {codes.shape[-1] if codes.ndim else 0} numbers but the renderer was trained "
                f"with {expected} ({', '.join(self.config.expression_names[:4])}, ...)",
                "export the expression codes from the rig the renderer was trained on", field="expression")

    def check_size(self, height: int, width: int) -> None:
        if height % self.size_multiple or width % self.size_multiple:
            raise InvalidInput(
                f"images of {width}x{height} cannot be rendered: width and height must be multiples of {self.size_multiple}",
                f"render the conditions at a size divisible by {self.size_multiple}, e.g. {self.size_multiple * 8}x{self.size_multiple * 8}",
                field="width")

    def control_input(self, conditions: ConditionTensors) -> torch.Tensor:
        """(B, channels.count, H, W): encoded geometry then concatenated tri-plane features (then, for a proxy with
        ambient coordinates, the ambient feature map's)."""
        channels = self.config.channels
        if channels.ambient_dims and conditions.ambient is None:
            raise InvalidInput("this renderer was trained on a neural-head (NPHM) proxy, but the conditions have no ambient pass",
                               "render the NPHM proxy's conditions (depth, normal, canonical, ambient, mask)", field="conditions")
        geometry = encode_geometry(channels, conditions.depth, conditions.canonical, conditions.normal, conditions.mask, conditions.ambient)
        parts = [geometry, self.triplanes(conditions.canonical, conditions.mask).to(geometry.dtype)]
        if channels.ambient_features:
            parts.append(self.ambient_features(conditions.ambient, conditions.mask).to(geometry.dtype))
        return torch.cat(parts, dim=1)

    def training_loss(self, conditions: ConditionTensors, targets: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """MSE on the model's prediction target for a batch of targets (B, 3, H, W) in [-1, 1]."""
        from . import direct

        self.check_expression(conditions.expression)
        with torch.no_grad():
            latents = self.encode_images(targets, generator)
        control = self.control_input(conditions)
        tokens = self.expression_encoder(conditions.expression)
        if self.config.mode == "direct":
            return direct.loss(self, latents, control, tokens)
        return self._diffusion_loss(latents, control, tokens, generator)

    def _diffusion_loss(self, latents, control, tokens, generator) -> torch.Tensor:
        scheduler = self.scheduler
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator, device=latents.device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        target = scheduler.get_velocity(latents, noise, timesteps) if self.config.prediction_type == "v_prediction" else noise
        prediction = self.predict(noisy, timesteps, control, tokens)
        return torch.nn.functional.mse_loss(prediction.float(), target.float())

    @torch.no_grad()
    def render(self, conditions: ConditionTensors, steps: int | None = None, seed: int | None = None) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] for a batch of renders' conditions.

        The same seed gives the same image for the same conditions, whatever the batch it is in.
        """
        from . import direct

        self.check_expression(conditions.expression)
        height, width = conditions.mask.shape[-2:]
        self.check_size(height, width)
        # Canonical coordinates stay float32 for the feature lookup (bf16 would blur them by about a texel).
        conditions = conditions.to(self.device)
        control = self.control_input(conditions).to(self.dtype)
        tokens = self.expression_encoder(conditions.expression.to(self.dtype))
        if self.config.mode == "direct":
            latents = direct.predict_latents(self, control, tokens)
        else:
            latents = self._sample_latents(control, tokens, steps or self.config.num_inference_steps,
                                           self.config.seed if seed is None else seed)
        return self.decode_latents(latents).float()

    def _sample_latents(self, control: torch.Tensor, tokens: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
        scheduler = self.scheduler
        scheduler.set_timesteps(steps, device=self.device)
        batch = control.shape[0]
        shape = self.latent_shape(1, control.shape[-2], control.shape[-1])
        generator = torch.Generator("cpu").manual_seed(seed)
        latents = torch.randn(shape, generator=generator) * scheduler.init_noise_sigma
        step_seeds = torch.randint(0, 2 ** 62, (len(scheduler.timesteps),), generator=generator).tolist()
        latents = latents.to(self.device, self.dtype).expand(batch, -1, -1, -1)
        for timestep, step_seed in zip(scheduler.timesteps, step_seeds):
            timesteps = timestep.expand(batch).to(self.device)
            prediction = self.predict(scheduler.scale_model_input(latents, timestep), timesteps, control, tokens)
            if self.config.sampler == "ddpm":
                # One generator per frame, all seeded alike: every frame gets the same step noise.
                same_noise = [torch.Generator("cpu").manual_seed(step_seed) for _ in range(batch)]
                latents = scheduler.step(prediction, timestep, latents, generator=same_noise).prev_sample
            else:
                latents = scheduler.step(prediction, timestep, latents, eta=0.0).prev_sample
        return latents

    def trainable_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """'planes' (the learned feature maps, trained at a much higher rate) and 'networks'."""
        planes = [self.triplanes.planes] + ([self.ambient_features.map] if self.config.channels.ambient_features else [])
        return {"planes": planes, "networks": [*self.expression_encoder.parameters(), *self.network_parameters()]}


def sampling_scheduler(config: DeferredRendererConfig, schedule: dict[str, Any]):
    """A scheduler on the noise ``schedule`` (a diffusers scheduler config) with the configured sampler,
    prediction type, SNR rescaling and spacing."""
    from diffusers import DDIMScheduler, DDPMScheduler

    scheduler_class = DDPMScheduler if config.sampler == "ddpm" else DDIMScheduler
    return scheduler_class.from_config(
        schedule,
        prediction_type=config.prediction_type,
        rescale_betas_zero_snr=config.zero_terminal_snr,
        timestep_spacing=config.timestep_spacing,
        clip_sample=False,
        steps_offset=0 if config.timestep_spacing == "trailing" else schedule.get("steps_offset", 1),
    )
