"""Device-specific speed settings of the deferred renderer, apart from what it computes.

On CUDA: cuDNN autotuning (the shapes repeat at every step and frame); attention is PyTorch's fused
SDPA already (diffusers' default processor, also in the expression attentions copied from it). Not
channels-last: measured on an H200, the GroupNorm layers of the UNet and ControlNet then copy every
activation to NCHW and back, which cost more than the faster convolutions gain. ``compile_denoiser``
adds ``torch.compile`` of the two networks evaluated at every step, in place (``Module.compile``), so
parameter names and checkpoints do not change. Nothing changes on a CPU. Figures: ``benchmarks/gpu/``.
"""

from __future__ import annotations

import torch


def use_device_settings(renderer) -> None:
    """cuDNN autotuning when the renderer sits on a CUDA device."""
    if renderer.device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def compile_denoiser(renderer) -> None:
    """``torch.compile`` the ControlNet and the UNet in place (the first render then compiles them)."""
    renderer.controlnet.compile()
    renderer.base.unet.compile()
