"""Deferred renderer speed: frames per second of ``DeferredRenderer.render`` with SD 2.1-sized random weights.

The models have Stable Diffusion 2.1's architecture (UNet 320/640/1280/1280 with linear attention
projections and 1024-wide cross-attention, the SD VAE, a ControlNet copied from the UNet taking
7 + 3x16 = 55 condition channels, 15 expression cross-attentions); weights are random, since
nothing can be downloaded, which does not change the arithmetic.

On a GPU: 512x512, 20 DDPM steps, no guidance, bf16, batches of 1 and 8 frames (the issue's
reference: stock diffusers ControlNet, fp16, one H100: 1.36 s/frame single, 0.19 s/frame batched
by 8). ``AVATAR_FOUNDRY_BENCH_COMPILE=1`` also times the UNet and ControlNet under torch.compile.
On a CPU the full setting takes many minutes, so it measures 128x128 with 2 steps, batch 1, and
reports the per-step cost; the keys say which setting was measured.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from backend.models.deferred.channels import ChannelLayout
from backend.models.deferred.conditions import ConditionTensors
from backend.models.deferred.latent_diffusion import LatentDiffusionRenderer
from backend.models.deferred.renderer import DeferredRendererConfig
from backend.models.tiny import write_tiny_tokenizer
from blender_addon.formats.expression import DEMO_LAYOUT

SD21_CROSS_ATTENTION = 1024


def sd21_sized_renderer(folder: Path, device: torch.device, dtype: torch.dtype) -> LatentDiffusionRenderer:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, cross_attention_dim=SD21_CROSS_ATTENTION, attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True, block_out_channels=(320, 640, 1280, 1280),
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2,
    )
    write_tiny_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    # Only the empty prompt's embedding is used, computed once: a one-layer encoder of SD 2.1's width suffices.
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=SD21_CROSS_ATTENTION,
                                                intermediate_size=1024, num_hidden_layers=1, num_attention_heads=16,
                                                max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="v_prediction")
    config = DeferredRendererConfig(base="sd21-sized-random", expression_names=DEMO_LAYOUT, channels=ChannelLayout(),
                                    triplane_resolution=512)
    return LatentDiffusionRenderer(config, unet, vae, text_encoder, tokenizer, scheduler).place(device, dtype).eval()


def synthetic_conditions(batch: int, resolution: int, code_length: int) -> ConditionTensors:
    generator = torch.Generator().manual_seed(1)
    canonical = torch.rand((batch, resolution, resolution, 3), generator=generator) - 0.5
    normal = torch.nn.functional.normalize(torch.randn((batch, resolution, resolution, 3), generator=generator), dim=-1)
    return ConditionTensors(2.2 + torch.rand((batch, resolution, resolution), generator=generator), canonical, normal,
                            torch.ones((batch, resolution, resolution)), torch.zeros((batch, code_length)))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_render(renderer: LatentDiffusionRenderer, batch: int, resolution: int, steps: int, device: torch.device) -> float:
    """Seconds per frame for one render call of ``batch`` frames (after a one-step warm-up)."""
    conditions = synthetic_conditions(batch, resolution, len(renderer.config.expression_names))
    renderer.render(conditions, steps=1)
    _synchronize(device)
    start = time.perf_counter()
    renderer.render(conditions, steps=steps)
    _synchronize(device)
    return (time.perf_counter() - start) / batch


@torch.no_grad()
def time_denoising_step(renderer: LatentDiffusionRenderer, resolution: int, device: torch.device) -> float:
    """Seconds of one ControlNet + UNet evaluation for one frame (the cost repeated every step)."""
    conditions = synthetic_conditions(1, resolution, len(renderer.config.expression_names)).to(device, renderer.dtype)
    control = renderer.control_input(conditions)
    tokens = renderer.expression_encoder(conditions.expression)
    latents = torch.randn(renderer.latent_shape(1, resolution, resolution), device=device, dtype=renderer.dtype)
    timesteps = torch.tensor([500], device=device)
    renderer.predict(latents, timesteps, control, tokens)
    _synchronize(device)
    start = time.perf_counter()
    renderer.predict(latents, timesteps, control, tokens)
    _synchronize(device)
    return time.perf_counter() - start


def run(device: torch.device) -> dict:
    on_gpu = device.type == "cuda"
    dtype = torch.bfloat16 if on_gpu else torch.float32
    resolution, steps, batches = (512, 20, (1, 8)) if on_gpu else (128, 2, (1,))
    with tempfile.TemporaryDirectory() as folder:
        renderer = sd21_sized_renderer(Path(folder), device, dtype)
    figures: dict = {"resolution": resolution, "steps": steps, "dtype": str(dtype).removeprefix("torch."),
                     "condition_channels": renderer.config.channels.count, "guidance": "none"}
    for batch in batches:
        seconds = time_render(renderer, batch, resolution, steps, device)
        figures[f"s_per_frame_batch{batch}"] = round(seconds, 4)
        figures[f"frames_per_s_batch{batch}"] = round(1.0 / seconds, 4)
    figures["s_per_denoising_step_batch1"] = round(time_denoising_step(renderer, resolution, device), 4)
    if on_gpu and os.environ.get("AVATAR_FOUNDRY_BENCH_COMPILE") == "1":
        renderer.base.unet = torch.compile(renderer.base.unet)
        renderer.controlnet = torch.compile(renderer.controlnet)
        for batch in batches:
            seconds = time_render(renderer, batch, resolution, steps, device)
            figures[f"compiled_frames_per_s_batch{batch}"] = round(1.0 / seconds, 4)
    return figures
