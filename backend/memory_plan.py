"""How a diffusion pipeline fits an artist's GPU: the dtype and the small-VRAM measures, decided by
pure functions of what the device reports (so they are tested without a GPU).

- dtype: bf16 only where the GPU computes it natively (``torch.cuda.is_bf16_supported(
  including_emulation=False)``: Ampere and newer), fp16 on older CUDA GPUs, float32 elsewhere.
- memory: ``full`` keeps everything on the GPU; ``low`` uses model CPU offload and VAE slicing and
  tiling; ``auto`` picks them from the free memory against the models' size and the activations of
  one batch at the resolution. A batch that still runs out of memory is halved and retried.

The free memory a plan is made from is the memory free *before* the models are on the GPU: the
models are loaded on the CPU, planned for, and only then moved (or, with CPU offload, left there for
diffusers to move one at a time); models already on the device count as free for them
(:func:`free_bytes_before_models`), so their size is never subtracted twice.
"""

from __future__ import annotations

from dataclasses import dataclass

MEMORY_MODES = ("auto", "full", "low")
GIB = 1024 ** 3

# -- per-image estimates ------------------------------------------------------------------------------
# Measured once: on an NVIDIA H200 (bf16, torch 2.11, 2026-12-04, benchmarks/RESULTS.md "GPU run 1"), one call of
# the SD 1.5 + ControlNet painter at 512 px (classifier-free guidance, denoising steps and the VAE decode) peaked
# at 0.47 GiB per image above the weights, the same at batch 1, 2, 4 and 8. Sampling and decoding happen one after
# the other, so each alone needs at most that; the sum below over-estimates by up to 2x, on the safe side. The
# deferred renderer (SD 2.1 size, 73-channel ControlNet, no guidance) measured the same 0.47 GiB per frame.
MEASURED_PEAK_BYTES_PER_IMAGE_AT_512 = int(0.47 * GIB)
UNET_ACTIVATION_BYTES_AT_512 = MEASURED_PEAK_BYTES_PER_IMAGE_AT_512
"""Sampling activations of one image at 512 px in half precision, classifier-free guidance included (bounded by the measured peak)."""
VAE_DECODE_BYTES_AT_512 = MEASURED_PEAK_BYTES_PER_IMAGE_AT_512
"""Decoding one 512 px image with the SD VAE in half precision (bounded by the measured peak)."""
HEADROOM = 1.15
"""Allocator fragmentation and the CUDA context (assumed, not measured)."""


def choose_dtype_name(device_type: str, bf16_native: bool) -> str:
    if device_type != "cuda":
        return "fp32"
    return "bf16" if bf16_native else "fp16"


@dataclass(frozen=True)
class MemoryPlan:
    cpu_offload: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False


    @property
    def weights_on_device(self) -> bool:
        """Move every model to the GPU up front; with CPU offload they stay on the CPU until each is needed."""
        return not self.cpu_offload


def free_bytes_before_models(free_now: int | None, bytes_already_on_device: int) -> int | None:
    """The free memory to plan with: what is free now plus what the models to be planned already occupy
    on the device (zero when they were loaded on the CPU, as they should be)."""
    return None if free_now is None else free_now + bytes_already_on_device


def plan_memory(mode: str, free_bytes: int | None, model_bytes: int, resolution: int, batch_size: int) -> MemoryPlan:
    """The measures for ``mode`` ('auto' | 'full' | 'low'); ``free_bytes`` is the memory free before
    the models are on the device (see :func:`free_bytes_before_models`), None means no GPU (nothing to save)."""
    if mode not in MEMORY_MODES:
        raise ValueError(f"memory mode must be one of {MEMORY_MODES}, got {mode!r}")
    if mode == "low":
        return MemoryPlan(cpu_offload=True, vae_slicing=True, vae_tiling=True)
    if mode == "full" or free_bytes is None:
        return MemoryPlan()
    scale = (resolution / 512) ** 2
    one_image = (UNET_ACTIVATION_BYTES_AT_512 + VAE_DECODE_BYTES_AT_512) * scale
    whole_batch = (UNET_ACTIVATION_BYTES_AT_512 * batch_size + VAE_DECODE_BYTES_AT_512 * batch_size) * scale
    usable = free_bytes / HEADROOM
    if usable >= model_bytes + whole_batch:
        return MemoryPlan()
    offload = usable < model_bytes + one_image
    tiling = offload or usable < model_bytes + UNET_ACTIVATION_BYTES_AT_512 * scale + VAE_DECODE_BYTES_AT_512 * scale * 2
    return MemoryPlan(cpu_offload=offload, vae_slicing=True, vae_tiling=tiling)


def batch_size_after_out_of_memory(batch_size: int) -> int | None:
    """Half the batch (at least 1) to retry with; None when a single image already ran out of memory."""
    return batch_size // 2 if batch_size > 1 else None
