"""Which torch device and dtype the backend computes on, and how to describe it to users."""

from __future__ import annotations

import os
from typing import Any


def pick_device(requested: str | None = None):
    """``requested`` ('cpu', 'cuda', 'cuda:1', 'mps') or $AVATAR_FOUNDRY_DEVICE, else the best available."""
    import torch

    name = requested or os.environ.get("AVATAR_FOUNDRY_DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def inference_dtype(device) -> Any:
    """bf16 on CUDA devices that compute it natively (not emulated), fp16 on older CUDA devices, else float32."""
    import torch

    from .memory_plan import choose_dtype_name

    native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[choose_dtype_name(device.type, native)]


def device_name(device=None) -> str:
    """Human-readable device name, e.g. 'NVIDIA H100 80GB HBM3' or 'cpu (2 threads)'."""
    import torch

    device = device or pick_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        import platform

        return f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
    return str(device)


def free_memory_bytes(device=None) -> int | None:
    import torch

    device = device or pick_device()
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def describe(device=None) -> dict[str, Any]:
    import torch

    device = device or pick_device()
    return {
        "device": str(device),
        "device_name": device_name(device),
        "free_memory_bytes": free_memory_bytes(device),
        "torch": torch.__version__,
    }
