"""Device-specific speed settings of the deferred renderer, apart from what it computes.

On CUDA the UNet, ControlNet and VAE run channels-last (their convolutions then use NHWC tensor-core
kernels without layout copies) with cuDNN autotuning; attention is PyTorch's fused SDPA already
(diffusers' default processor, also in the expression attentions copied from it). ``compile_denoiser``
adds ``torch.compile`` of the two networks evaluated at every step; it is compiled in place
(``Module.compile``), so parameter names and checkpoints do not change. Nothing changes on a CPU.
Figures: ``benchmarks/gpu/diffusion.py``.
"""

from __future__ import annotations

import torch


def use_device_layout(renderer) -> None:
    """Channels-last networks and cuDNN autotuning when the renderer sits on a CUDA device."""
    if renderer.device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    for network in (renderer.controlnet, renderer.base.unet, renderer.base.vae):
        network.to(memory_format=torch.channels_last)


def compile_denoiser(renderer) -> None:
    """``torch.compile`` the ControlNet and the UNet in place (the first render then compiles them)."""
    renderer.controlnet.compile()
    renderer.base.unet.compile()
