"""How a trained generator is set up for inference on each device (previews, meshes, style-prior pairs).

On CUDA: the device's half precision for autocast (bf16 where native, else fp16), channels-last
weights (the convolutions of the tri-plane backbone and the super-resolution then run on tensor
cores in NHWC without layout copies), cuDNN autotuning (shapes repeat from image to image), and
optionally ``torch.compile`` with CUDA graphs: every shape in the generator is static for a given
batch size and rendering resolution, so the whole forward replays as one graph. Elsewhere fp32 and
no changes: CPU results stay bit-for-bit what they were. Figures: ``benchmarks/gpu/eg3d.py``.
"""

from __future__ import annotations

from typing import Any

import torch

from ...device import inference_dtype

COMPILE_MODE_CUDA = "reduce-overhead"
"""Inductor kernels replayed through CUDA graphs (one launch per forward instead of hundreds)."""


def prepare_for_inference(generator, device) -> tuple[Any, torch.dtype]:
    """The generator in eval mode without gradients, laid out for ``device``; and the autocast dtype to run it in."""
    device = torch.device(device)
    generator = generator.eval().requires_grad_(False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        generator = generator.to(memory_format=torch.channels_last)
    return generator, inference_dtype(device)


def inference_autocast(device):
    """Autocast to the device's inference dtype (a no-op context on a CPU, which stays fp32)."""
    device = torch.device(device)
    dtype = inference_dtype(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def compile_generator(generator, device) -> tuple[Any, str]:
    """``torch.compile`` of the generator (CUDA graphs on CUDA); returns it and the mode used."""
    mode = COMPILE_MODE_CUDA if torch.device(device).type == "cuda" else "default"
    # dynamic=False: one specialised graph per batch size, as CUDA graphs need static shapes anyway
    return torch.compile(generator, mode=mode, dynamic=False), mode
