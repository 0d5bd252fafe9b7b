"""Multi-view painting speed with SD 1.5-sized random-weight models (UNet 860M, two ControlNets, pose + depth).

On CUDA: the issue's configuration, 512x512, 20 steps, guidance 7.5. "stock" is diffusers'
StableDiffusionControlNetPipeline in fp16 called one image at a time with prompt strings;
"ours" is the Painter (the code `avatar-foundry multiview` runs): batches of 8, bf16, SDPA,
channels-last, embeddings once per prompt; "ours_compiled" adds torch.compile of the UNet.
Reference (issue 5, one H100): stock 0.97 s/image one at a time, 0.21 s/image batched 8.

On CPU the full configuration would take hours (a 2-core machine shared with other work needed
tens of seconds for one SD 1.5 UNet forward pass at 256x256), so it measures one image at
128x128 with 1 denoising step (UNet + both ControlNets with classifier-free guidance, then the
VAE decode), fp32, no warm-up: a smoke figure that the code path runs at SD 1.5 size, not a speed
to compare with the GPU one.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

GPU_CONFIG = {"resolution": 512, "steps": 20, "guidance": 7.5, "batch_size": 8, "images": 16}
CPU_CONFIG = {"resolution": 128, "steps": 1, "guidance": 7.5, "batch_sizes": (1,)}


def build_sd15_sized(tokenizer_folder: Path, device, dtype):
    """Random-weight models with SD 1.5's shapes: UNet, VAE, CLIP ViT-L text encoder, two ControlNets."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from backend.models.diffusion_loading import BaseComponents

    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072,
                                                num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77))
    controlnets = [ControlNetModel.from_unet(unet) for _ in range(2)]
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    for module in (unet, vae, text_encoder, *controlnets):
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return BaseComponents(unet, vae, text_encoder, tokenizer, scheduler), controlnets


def _planned(count: int, resolution: int):
    from PIL import Image

    from backend.multiview.generation import PlannedImage

    images = [PlannedImage(None, "front", i, f"images/{i}.png", i, f"a cartoon head, front view, style {i % 3}", "lowres")
              for i in range(count)]
    pose = Image.new("RGB", (resolution, resolution), (40, 0, 0))
    depth = Image.new("RGB", (resolution, resolution), (128, 128, 128))
    return images, pose, depth


def _time_painter(painter, settings, count: int, batch: int, resolution: int) -> float:
    import torch

    images, pose, depth = _planned(count, resolution)
    start = time.perf_counter()
    for offset in range(0, count, batch):
        chunk = images[offset:offset + batch]
        painter.paint(chunk, [i.seed for i in chunk], [[pose] * len(chunk), [depth] * len(chunk)], settings, resolution, lambda _: None)
    if painter.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _settings(steps: int, guidance: float, batch: int, compile_unet: bool = False):
    from backend.multiview.generation import MultiviewSettings

    return MultiviewSettings(style="bench", base="bench", controlnets={"pose": "p", "depth": "d"}, steps=steps,
                             guidance=guidance, batch_size=batch, compile=compile_unet)


def run(device) -> dict:
    import torch

    from backend.models.tiny import write_tiny_tokenizer
    from backend.multiview.painter import Painter, resolve_dtype

    with tempfile.TemporaryDirectory() as folder:
        write_tiny_tokenizer(Path(folder) / "tokenizer")
        if device.type == "cuda":
            return _run_gpu(device, Path(folder) / "tokenizer")
        dtype = resolve_dtype("fp32", device)
        base, controlnets = build_sd15_sized(Path(folder) / "tokenizer", device, dtype)
    config = CPU_CONFIG
    results = {"configuration": f"SD1.5-sized random weights, pose+depth ControlNets, {config['resolution']}^2, "
                                f"{config['steps']} steps, guidance {config['guidance']}, fp32, CPU threads {torch.get_num_threads()}"}
    for batch in config["batch_sizes"]:
        settings = _settings(config["steps"], config["guidance"], batch)
        painter = Painter.assemble(base, controlnets, settings, device, dtype)
        seconds = _time_painter(painter, settings, batch, batch, config["resolution"])
        results[f"batch{batch}_s_per_image"] = round(seconds / batch, 3)
    results["images_per_s"] = round(1.0 / min(results[f"batch{b}_s_per_image"] for b in config["batch_sizes"]), 4)
    return results


def _run_gpu(device, tokenizer_folder: Path) -> dict:
    import torch
    from diffusers import MultiControlNetModel, StableDiffusionControlNetPipeline

    from backend.multiview.painter import Painter

    config = GPU_CONFIG
    resolution, steps, guidance = config["resolution"], config["steps"], config["guidance"]
    results = {"configuration": f"SD1.5-sized random weights, pose+depth ControlNets, {resolution}^2, {steps} steps, guidance {guidance}"}

    base, controlnets = build_sd15_sized(tokenizer_folder, device, torch.float16)
    stock = StableDiffusionControlNetPipeline(base.vae, base.text_encoder, base.tokenizer, base.unet, MultiControlNetModel(controlnets),
                                              base.scheduler, None, None, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    _, pose, depth = _planned(1, resolution)
    stock("warm-up", image=[pose, depth], num_inference_steps=2, guidance_scale=guidance)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for index in range(4):
        stock(f"a cartoon head, front view, style {index}", image=[pose, depth], num_inference_steps=steps, guidance_scale=guidance)
    torch.cuda.synchronize()
    results["stock_fp16_one_at_a_time_s_per_image"] = round((time.perf_counter() - start) / 4, 4)
    del stock, base, controlnets
    torch.cuda.empty_cache()

    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    base, controlnets = build_sd15_sized(tokenizer_folder, device, dtype)
    for label, compile_unet in (("ours", False), ("ours_compiled", True)):
        settings = _settings(steps, guidance, config["batch_size"], compile_unet)
        painter = Painter.assemble(base, controlnets, settings, device, dtype)
        _time_painter(painter, settings, config["batch_size"], config["batch_size"], resolution)  # warm-up (and compile)
        seconds = _time_painter(painter, settings, config["images"], config["batch_size"], resolution)
        results[f"{label}_batch{config['batch_size']}_s_per_image"] = round(seconds / config["images"], 4)
        results[f"{label}_images_per_s"] = round(config["images"] / seconds, 3)
    results["images_per_s"] = max(results["ours_images_per_s"], results["ours_compiled_images_per_s"])
    return results
