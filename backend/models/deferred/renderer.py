"""The deferred diffusion renderer (DiffusionAvatars): proxy passes of a rigged head -> image.

A frozen latent-diffusion base (UNet, VAE, and the empty-prompt text embedding) is steered by a
trainable ControlNet copied from the base UNet. The ControlNet's input is the proxy's geometry plus
learnable tri-plane features looked up at canonical coordinates (see channels.py); the rig's
expression code enters the UNet through extra cross-attention layers (expression_attention.py).

Sampling follows the paper: DDPM ancestral steps over trailing timesteps of a zero-terminal-SNR
schedule, 20 steps, no classifier-free guidance, and ONE seeded initial latent plus ONE fixed noise
per step shared by every frame and view, so that an animation does not flicker (``sampler='ddim'``
is the deterministic alternative, with no per-step noise at all). ``mode='direct'`` is the paper's "w/o diffusion" ablation (direct.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...errors import InvalidInput
from .channels import ChannelLayout, encode_geometry
from .conditions import ConditionTensors
from .expression_attention import ExpressionEncoder, add_expression_attention
from .triplane_features import TriplaneFeatures

CHECKPOINT_KIND = "deferred-renderer"
MODES = ("diffusion", "direct")
PREDICTION_TYPES = ("epsilon", "v_prediction")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
SAMPLERS = ("ddpm", "ddim")
CONDITIONING_EMBEDDING_WIDTHS = (16, 32, 96, 256)


@dataclass
class DeferredRendererConfig:
    base: str
    """Model-store name of the frozen Stable Diffusion 1.x/2.x base."""
    expression_names: tuple[str, ...]
    """Layout of the expression code (blender_addon/formats/expression.py), fixed at training."""
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


@dataclass
class FrozenBase:
    """The frozen parts, kept outside the module tree so that ``state_dict`` holds only what trains."""

    unet: Any
    vae: Any
    prompt_embedding: torch.Tensor
    """(1, tokens, width) text encoder output for ``config.prompt``."""
    scheduler: Any


def base_fingerprint(unet, vae) -> dict[str, Any]:
    """The architecture facts a checkpoint depends on; compared when loading onto a base model."""
    return {
        "unet_block_out_channels": list(unet.config.block_out_channels),
        "unet_down_block_types": list(unet.config.down_block_types),
        "cross_attention_dim": unet.config.cross_attention_dim,
        "latent_channels": vae.config.latent_channels,
        "vae_downsampling": vae_downsampling(vae),
    }


def vae_downsampling(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


class DeferredRenderer(nn.Module):
    """Trainable: ``controlnet``, ``triplanes``, ``expression_encoder``, ``expression_layers``."""

    def __init__(self, config: DeferredRendererConfig, unet, vae, text_encoder, tokenizer, scheduler) -> None:
        from diffusers import ControlNetModel

        super().__init__()
        self.config = config
        for frozen in (unet, vae, text_encoder):
            frozen.requires_grad_(False)
            frozen.eval()
        self.size_multiple = vae_downsampling(vae) * 2 ** (len(unet.config.block_out_channels) - 1)
        widths = CONDITIONING_EMBEDDING_WIDTHS[: int(math.log2(vae_downsampling(vae))) + 1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # a fresh renderer is the same for the same config
            self.controlnet = ControlNetModel.from_unet(unet, conditioning_channels=config.channels.count,
                                                        conditioning_embedding_out_channels=widths)
            self.triplanes = TriplaneFeatures(config.channels.triplane_channels, config.triplane_resolution)
            self.expression_encoder = ExpressionEncoder(len(config.expression_names), config.expression_tokens,
                                                        unet.config.cross_attention_dim)
            self.expression_layers = add_expression_attention(unet, config.expression_tokens)
        self.fingerprint = base_fingerprint(unet, vae)
        self.base = FrozenBase(unet, vae, _prompt_embedding(config.prompt, text_encoder, tokenizer), _sampling_scheduler(config, scheduler))

    def place(self, device, dtype=torch.float32) -> "DeferredRenderer":
        """Move trainable and frozen parts to ``device``/``dtype``."""
        self.to(device=device, dtype=dtype)
        for frozen in (self.base.unet, self.base.vae):
            frozen.to(device=device)
            if frozen.dtype != dtype:
                frozen.to(dtype=dtype)
        self.base.prompt_embedding = self.base.prompt_embedding.to(device=device, dtype=dtype)
        return self

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
                f"render the conditions at a size divisible by {self.size_multiple}, e.g. 512x512", field="width")

    def control_input(self, conditions: ConditionTensors) -> torch.Tensor:
        """(B, channels.count, H, W): encoded geometry then concatenated tri-plane features."""
        geometry = encode_geometry(self.config.channels, conditions.depth, conditions.canonical, conditions.normal, conditions.mask)
        features = self.triplanes(conditions.canonical, conditions.mask)
        return torch.cat([geometry, features.to(geometry.dtype)], dim=1)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, control: torch.Tensor, expression_tokens: torch.Tensor) -> torch.Tensor:
        """The UNet's output (the configured prediction target) for noisy ``latents`` at ``timesteps``."""
        text = self.base.prompt_embedding.expand(latents.shape[0], -1, -1).to(latents.dtype)
        down_residuals, mid_residual = self.controlnet(latents, timesteps, encoder_hidden_states=text,
                                                       controlnet_cond=control, return_dict=False)
        context = torch.cat([text, expression_tokens.to(text.dtype)], dim=1)
        return self.base.unet(latents, timesteps, encoder_hidden_states=context,
                              down_block_additional_residuals=down_residuals,
                              mid_block_additional_residual=mid_residual, return_dict=False)[0]

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> scaled latents (a posterior sample, as in training LDMs)."""
        posterior = self.base.vae.encode(images.to(self.dtype)).latent_dist
        return posterior.sample(generator) * self.base.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1]."""
        images = self.base.vae.decode(latents / self.base.vae.config.scaling_factor, return_dict=False)[0]
        return images.clamp(-1.0, 1.0)

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
        scheduler = self.base.scheduler
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

    def latent_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        factor = self.fingerprint["vae_downsampling"]
        return batch, self.fingerprint["latent_channels"], height // factor, width // factor

    def _sample_latents(self, control: torch.Tensor, tokens: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
        scheduler = self.base.scheduler
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
        """'planes' (the tri-plane features, trained at a much higher rate) and 'networks'."""
        networks = [*self.controlnet.parameters(), *self.expression_encoder.parameters(), *self.expression_layers.parameters()]
        return {"planes": [self.triplanes.planes], "networks": networks}


def _prompt_embedding(prompt: str, text_encoder, tokenizer) -> torch.Tensor:
    tokens = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return text_encoder(tokens.input_ids.to(text_encoder.device))[0].detach()


def _sampling_scheduler(config: DeferredRendererConfig, base_scheduler):
    """The base model's noise schedule, with the configured sampler, prediction type, SNR rescaling and spacing."""
    from diffusers import DDIMScheduler, DDPMScheduler

    scheduler_class = DDPMScheduler if config.sampler == "ddpm" else DDIMScheduler
    return scheduler_class.from_config(
        base_scheduler.config,
        prediction_type=config.prediction_type,
        rescale_betas_zero_snr=config.zero_terminal_snr,
        timestep_spacing=config.timestep_spacing,
        clip_sample=False,
        steps_offset=0 if config.timestep_spacing == "trailing" else base_scheduler.config.get("steps_offset", 1),
    )
