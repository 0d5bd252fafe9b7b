"""How much memory and time a job will take, estimated before it starts, and the refusal of a job
that cannot fit this machine.

One estimate serves the server (a submission that cannot fit is refused with 422 naming the param
and a value or preset that fits; ``POST /v1/jobs/estimate`` answers the same figures without
submitting) and the panel (which shows them). The figures are deliberately coarse: peak memory of
the device that computes (CPU RAM, or GPU memory) from the sizes that drive it (batch, resolution,
rays and samples, model size), and time from the work in floating-point operations over a device
speed. The constants were measured on this project's CPU machine (see each one); GPU speed is a
conservative guess. They are good to a factor of about two, which is what refusing a run that
needs ten times the memory, or a year, requires.

Jobs that take a model size from elsewhere read it through ``resolver`` (the server's reference
resolver: model-store names and ``job:<id>`` outputs): a Stable Diffusion base's UNet files, a
trained generator's config. A base model that is not registered gives no estimate (the job itself
then fails naming the missing model); without a resolver a base is taken as Stable Diffusion 1.5;
a generator that cannot be read yet is taken as the ``small`` preset.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import InvalidInput
from .memory_plan import GIB, UNET_ACTIVATION_BYTES_AT_512, VAE_DECODE_BYTES_AT_512

MAX_JOB_SECONDS = 14 * 24 * 3600.0
"""Longest run a job may be estimated to take on this machine (EG3D's own FFHQ run takes ~8 days on 8 GPUs)."""
CPU_FLOPS = 1.0e11
"""Effective float32 operations per second of a CPU job (train-deferred's first step at its defaults
took ~300 s on the 2-core test machine: ~3.6e12 operations per image, 8 images)."""
GPU_FLOPS = 1.0e14
"""Effective operations per second on a CUDA GPU (mixed precision; well under a data-centre GPU's peak)."""
MPS_FLOPS = 5.0e12
HOST_SHARE = 0.8
"""Share of the computer's RAM one job may take on the CPU (the OS, Blender and the backend keep the rest)."""
DEVICE_SHARE = 0.9
"""Share of a GPU's memory one job may take (the CUDA context and fragmentation take the rest)."""
RUNTIME_BYTES = 600 << 20
SCRATCH_FRAME_BYTES = 256 << 20
"""A from-scratch (pixel-space) renderer's activations per frame at up to 128² (its size limit)."""
SCRATCH_FRAME_PIXELS = 128 * 128
"""The backend process itself: Python, torch, the server (measured ~300-600 MB)."""
SD15_UNET_BYTES = 3_438_000_000
"""Stable Diffusion 1.5's UNet in float32 (859.5 M parameters): the unit the diffusion figures scale with."""
UNET_FLOPS_AT_512 = 0.8e12
"""One UNet forward pass of SD 1.5 on a 512 px image (64² latent), ControlNet included."""
SCRATCH_PARAMETERS_PER_SQUARED_WIDTH = 190
"""The from-scratch deferred UNet's parameters per squared level width, summed over levels (2.7 M at 32, 64, 96)."""
PIXEL_SPACE_AREA = 64
"""A pixel-space UNet sees 8 x 8 as many positions as a latent one at the same image size."""
EG3D_BYTES_PER_SAMPLE_FEATURE = 65
"""Training memory per ray sample and decoder feature of one image (measured on the CPU: tiny preset
5.4 MB per image at 16² rays x 24 samples x 16 features, small preset 1.7 GB at 64² x 96 x 64)."""
EG3D_FLOPS_PER_SAMPLE_FEATURE = 1.9e5
"""Training operations per ray sample and decoder feature of one image (small preset: 47 s per image
on the test CPU, i.e. at ``CPU_FLOPS``; the tiny preset does 4x better, having less overhead per unit)."""


@dataclass(frozen=True)
class Machine:
    """What a job may use here: the computing device's kind, its memory budget and speed."""

    device_type: str
    memory_bytes: int
    flops: float

    @property
    def memory_name(self) -> str:
        return "GPU memory" if self.device_type == "cuda" else "memory (RAM)"


@dataclass(frozen=True)
class Estimate:
    peak_bytes: int
    seconds: float
    memory_param: str
    """The param that drives memory most: the one a refusal names."""
    time_param: str
    """The param that drives time most."""

    def to_json(self, machine: Machine) -> dict[str, Any]:
        return {"memory_bytes": self.peak_bytes, "seconds": round(self.seconds, 1), "device": machine.device_type,
                "memory_limit_bytes": machine.memory_bytes, "seconds_limit": MAX_JOB_SECONDS,
                "fits": self.peak_bytes <= machine.memory_bytes and self.seconds <= MAX_JOB_SECONDS}


def this_machine(device: Any) -> Machine:
    """The budget of ``device`` (a torch.device) on this computer."""
    device_type = getattr(device, "type", str(device))
    if device_type == "cuda":
        import torch

        _, total = torch.cuda.mem_get_info(device)
        return Machine("cuda", int(total * DEVICE_SHARE), GPU_FLOPS)
    share = 0.6 if device_type == "mps" else HOST_SHARE
    return Machine(device_type, int(physical_memory_bytes() * share), MPS_FLOPS if device_type == "mps" else CPU_FLOPS)


def physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # Windows: no sysconf
        import ctypes

        class MemoryStatus(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                        ("available", ctypes.c_ulonglong), ("rest", ctypes.c_ulonglong * 5)]

        status = MemoryStatus(length=ctypes.sizeof(MemoryStatus))
        ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))
        return int(status.total)


# ------------------------------------------------------------------ per kind


def _eg3d_units(preset_name: str) -> tuple[int, int]:
    """(sample-feature units per image, parameter count) of an EG3D preset."""
    from training.eg3d.config import preset

    return _generator_units(preset(preset_name).generator)


def _generator_units(generator: Any) -> tuple[int, int]:
    samples = generator.stratified_samples + generator.importance_samples
    units = generator.neural_rendering_resolution ** 2 * samples * generator.decoder_hidden
    parameters = generator.channel_base * 1_000 + generator.sr_channel_base * 200  # StyleGAN2 backbones grow with channel_base
    return units, parameters


def _eg3d_settings(params: Any) -> tuple[int, int]:
    """(batch size, total images) the run will use: the params', else its preset's."""
    from training.eg3d.config import preset

    config = preset(params.config)
    return params.batch_size or config.batch_size, params.total_images or config.total_images


def _trained_generator_units(resolver: Any, reference: str) -> tuple[int, int]:
    """The units of the generator a job names, from its checkpoint config (else the small preset)."""
    from .models.eg3d.generator import CHECKPOINT_KIND, GeneratorConfig
    from .formats.checkpoint import read_checkpoint_config

    try:
        config, _ = read_checkpoint_config(resolver(reference), CHECKPOINT_KIND, GeneratorConfig)
    except Exception:  # not trained yet, or not found: the job itself will say so
        return _eg3d_units("small")
    return _generator_units(config)


def estimate_train_eg3d(params: Any, machine: Machine, renders: int, resolver: Any = None) -> Estimate:
    units, parameters = _eg3d_units(params.config)
    batch, total = _eg3d_settings(params)
    scale = 0.5 if machine.device_type == "cuda" else 1.0  # bf16 autocast on CUDA
    peak = RUNTIME_BYTES + parameters * 4 * 8 + int(EG3D_BYTES_PER_SAMPLE_FEATURE * units * batch * scale)
    return Estimate(peak, EG3D_FLOPS_PER_SAMPLE_FEATURE * units * total / machine.flops, "batch_size", "total_images")


class UnknownModel(LookupError):
    """A model the estimate needs is not registered."""


def _unet_bytes(resolver: Any, name: str) -> int:
    """Float32 size of the UNet of the base ``name`` ('' = the only one registered)."""
    if resolver is None:
        return SD15_UNET_BYTES
    store = resolver.models
    try:
        entry = store.resolve(store.pick(name, "base", "base"), role="base")
    except Exception:  # not registered (yet): the job itself will say so
        raise UnknownModel(name) from None
    path = Path(entry.path)
    if path.is_dir():
        files = [file for file in (path / "unet").glob("*") if file.suffix in (".safetensors", ".bin")]
        size = sum(file.stat().st_size for file in files)
        half = any("fp16" in file.name for file in files)
        return size * (2 if half else 1) or SD15_UNET_BYTES
    return int(path.stat().st_size * 0.8) if path.is_file() else SD15_UNET_BYTES


def estimate_train_deferred(params: Any, machine: Machine, renders: int, resolver: Any = None) -> Estimate:
    if params.prior == "none":  # every weight trains (weights, gradients, two Adam moments), in pixel space
        unet = 4 * SCRATCH_PARAMETERS_PER_SQUARED_WIDTH * sum(width * width for width in params.scratch_widths)
        scale, frozen, trainable = unet / SD15_UNET_BYTES * PIXEL_SPACE_AREA, 0.0, unet * 4
    else:
        unet = _unet_bytes(resolver, params.base)
        scale, frozen, trainable = unet / SD15_UNET_BYTES, unet * 1.4, 0.45 * unet * 4  # the ControlNet trains
    area = (params.resolution / 512) ** 2
    half = machine.device_type == "cuda" and params.mixed_precision != "no"
    activations = 2.5 * UNET_ACTIVATION_BYTES_AT_512 * 2 * scale * area * params.batch_size * (0.5 if half else 1.0)
    planes = 3 * params.triplane_channels * params.triplane_resolution ** 2 * 4 * 4  # weights, gradients, two Adam moments
    peak = RUNTIME_BYTES + int(frozen + trainable + planes + activations)
    work = 3 * UNET_FLOPS_AT_512 * 1.5 * scale * area * params.batch_size * params.grad_accum * params.steps
    return Estimate(peak, work / machine.flops, "batch_size", "steps")


def estimate_multiview(params: Any, machine: Machine, renders: int, resolver: Any = None) -> Estimate:
    unet = _unet_bytes(resolver, params.base)
    scale = unet / SD15_UNET_BYTES
    resolution = params.resolution or 512
    area = (resolution / 512) ** 2
    bytes_per_value = 0.5 if machine.device_type == "cuda" else 1.0
    models = unet * (1.0 + 0.45 * max(1, len(params.controlnets)) + 0.4) * bytes_per_value
    per_image = (UNET_ACTIVATION_BYTES_AT_512 + VAE_DECODE_BYTES_AT_512) * 2 * scale * area * bytes_per_value
    peak = RUNTIME_BYTES + int(models + per_image * params.batch_size)
    images = renders * params.per_view * params.candidates
    work = UNET_FLOPS_AT_512 * scale * area * params.steps * images * (2 if params.guidance > 1 else 1)
    return Estimate(peak, work / machine.flops, "batch_size", "per_view")


def estimate_animate(params: Any, machine: Machine, renders: int, resolver: Any = None) -> Estimate:
    batch = params.batch_size or (8 if machine.device_type == "cuda" else 2)
    scratch_parameters = _scratch_renderer_parameters(resolver, params.checkpoint)
    if scratch_parameters is not None:  # no latent-diffusion base: weights and a pixel-space UNet pass per frame
        peak = RUNTIME_BYTES + scratch_parameters * 4 + SCRATCH_FRAME_BYTES * batch
        return Estimate(peak, 2.0 * scratch_parameters * SCRATCH_FRAME_PIXELS * renders / machine.flops, "batch_size", "batch_size")
    bytes_per_value = 0.5 if machine.device_type == "cuda" else 1.0
    models = SD15_UNET_BYTES * 1.85 * bytes_per_value
    per_frame = (UNET_ACTIVATION_BYTES_AT_512 + VAE_DECODE_BYTES_AT_512) * 2 * bytes_per_value
    peak = RUNTIME_BYTES + int(models + per_frame * batch)
    return Estimate(peak, UNET_FLOPS_AT_512 * 20 * renders / machine.flops, "batch_size", "batch_size")


def _scratch_renderer_parameters(resolver: Any, reference: str | None) -> int | None:
    """Parameters of the from-scratch renderer an animate job names (the embedded default when it names none);
    None for a renderer on a latent-diffusion base, or one that cannot be read (the job itself will say why)."""
    from safetensors import safe_open

    from .default_models import DEFAULT_RENDERER
    from .formats.checkpoint import WEIGHTS_NAME, read_checkpoint_config
    from .models.deferred.renderer import CHECKPOINT_KIND, DeferredRendererConfig

    try:
        folder = Path(resolver(reference)) if reference else DEFAULT_RENDERER
        config, _ = read_checkpoint_config(folder, CHECKPOINT_KIND, DeferredRendererConfig)
        if config.prior != "none":
            return None
        with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as weights:
            return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())
    except Exception:
        return None


def estimate_generate_avatar(params: Any, machine: Machine, renders: int, resolver: Any = None) -> Estimate:
    grid = params.mesh_resolution ** 3
    peak = RUNTIME_BYTES + 24 * grid + 64 * params.texture_size ** 2 + 2 * GIB // 4
    work = grid * 2e5 + params.texture_size ** 2 * 2e5 + (params.prior_steps * 1e9 if params.style_prior else 0)
    return Estimate(peak, work / machine.flops, "mesh_resolution", "mesh_resolution")


def estimate_train_style_prior(params: Any, machine: Machine, renders: int, resolver: Any = None) -> Estimate:
    units, parameters = _trained_generator_units(resolver, params.generator) if resolver else _eg3d_units("small")
    per_pair = EG3D_BYTES_PER_SAMPLE_FEATURE * units / 3  # rendering without gradients
    peak = RUNTIME_BYTES + parameters * 4 * 2 + int(per_pair * params.batch_size)
    work = EG3D_FLOPS_PER_SAMPLE_FEATURE / 3 * units * params.batch_size * params.steps / params.pair_reuse
    return Estimate(peak, work / machine.flops, "batch_size", "steps")


def estimate_echo_conditions(params: Any, machine: Machine, renders: int, resolver: Any = None) -> Estimate:
    return Estimate(RUNTIME_BYTES + 64 * params.thumbnail_size ** 2 * max(renders, 1), 0.05 * max(renders, 1),
                    "thumbnail_size", "thumbnail_size")


ESTIMATORS: dict[str, Callable[..., Estimate]] = {
    "train-eg3d": estimate_train_eg3d,
    "train-deferred": estimate_train_deferred,
    "multiview": estimate_multiview,
    "animate": estimate_animate,
    "generate-avatar": estimate_generate_avatar,
    "train-style-prior": estimate_train_style_prior,
    "echo-conditions": estimate_echo_conditions,
}
_PRESET_SIZES = ("batch_size", "total_images")
SMALLER_PRESETS = {"full": ("small", "tiny"), "small": ("tiny",), "tiny": ()}


def estimate_job(kind: str, params: Any, machine: Machine, renders: int = 1, resolver: Any = None) -> Estimate | None:
    """The estimate for validated ``params`` of ``kind`` (None for a kind without one, or when a
    model it needs is not registered)."""
    estimator = ESTIMATORS.get(kind)
    if estimator is None:
        return None
    try:
        return estimator(params, machine, renders, resolver)
    except UnknownModel:
        return None


def fit_unset_params(kind: str, params: Any, machine: Machine, renders: int = 1, resolver: Any = None) -> Any:
    """``params`` with the sizes the request left unset (None: "the preset's") chosen to fit this
    machine: train-eg3d's batch and length, animate's batch. Set values are never changed."""
    if kind == "train-eg3d":
        fitted = params
        if params.batch_size is None:
            batch = _largest_fitting(params, "batch_size", lambda candidate: _fits_memory(kind, candidate, machine, renders, resolver))
            fitted = fitted.model_copy(update={"batch_size": batch}) if batch else fitted
        if params.total_images is None:
            total = _largest_fitting(fitted, "total_images", lambda candidate: _fits_time(kind, candidate, machine, renders, resolver))
            fitted = fitted.model_copy(update={"total_images": total}) if total else fitted
        return fitted
    if kind == "animate" and params.batch_size is None:
        batch = _largest_fitting(params.model_copy(update={"batch_size": 8 if machine.device_type == "cuda" else 2}),
                                 "batch_size", lambda candidate: _fits_memory(kind, candidate, machine, renders, resolver))
        return params.model_copy(update={"batch_size": batch}) if batch else params
    return params


def _fits_memory(kind: str, params: Any, machine: Machine, renders: int, resolver: Any) -> bool:
    estimate = estimate_job(kind, params, machine, renders, resolver)
    return estimate is None or estimate.peak_bytes <= machine.memory_bytes


def _fits_time(kind: str, params: Any, machine: Machine, renders: int, resolver: Any) -> bool:
    estimate = estimate_job(kind, params, machine, renders, resolver)
    return estimate is None or estimate.seconds <= MAX_JOB_SECONDS


def check_job_fits(kind: str, params: Any, machine: Machine, renders: int = 1, resolver: Any = None) -> Estimate | None:
    """The estimate, or InvalidInput naming the param to change and a value (or preset) that fits."""
    estimate = estimate_job(kind, params, machine, renders, resolver)
    if estimate is None:
        return None
    if estimate.peak_bytes > machine.memory_bytes:
        fix = _memory_fix(kind, params, machine, renders, resolver, estimate.memory_param)
        raise InvalidInput(f"this job needs about {_gib(estimate.peak_bytes)} of {machine.memory_name}; "
                           f"this machine has {_gib(machine.memory_bytes)} for a job", fix[1], field=f"params.{fix[0]}")
    if estimate.seconds > MAX_JOB_SECONDS:
        fix = _time_fix(kind, params, machine, renders, resolver, estimate.time_param)
        raise InvalidInput(f"this job would take about {_days(estimate.seconds)} on this machine "
                           f"(at most {_days(MAX_JOB_SECONDS)} are accepted)", fix[1], field=f"params.{fix[0]}")
    return estimate


def _memory_fix(kind: str, params: Any, machine: Machine, renders: int, resolver: Any, name: str) -> tuple[str, str]:
    def fits(candidate: Any) -> bool:
        return _fits_memory(kind, candidate, machine, renders, resolver)

    if kind == "train-eg3d":
        for smaller in SMALLER_PRESETS[params.config]:
            if fits(params.model_copy(update={"config": smaller, "batch_size": None})):
                largest = _largest_fitting(params, name, fits)
                if largest is not None:
                    return name, f"set {name} to {largest} or less, or use the '{smaller}' preset"
                return "config", f"use the '{smaller}' preset"
    largest = _largest_fitting(params, name, fits)
    if largest is None:
        return name, "no value of it fits; lower the resolution, or run the job on a computer with more memory"
    return name, f"set {name} to {largest} or less"


def _time_fix(kind: str, params: Any, machine: Machine, renders: int, resolver: Any, name: str) -> tuple[str, str]:
    def fits(candidate: Any) -> bool:
        return _fits_time(kind, candidate, machine, renders, resolver)

    largest = _largest_fitting(params, name, fits)
    if largest is None:
        return name, "lower it, or run the job on a faster computer (a GPU)"
    return name, f"set {name} to {largest} or less"


def _largest_fitting(params: Any, name: str, fits: Callable[[Any], bool]) -> int | None:
    """The largest positive int value of param ``name`` (up to its current one) with which ``fits``."""
    current = getattr(params, name, None)
    if current is None and name in _PRESET_SIZES and hasattr(params, "dataset"):  # train-eg3d: the preset's value
        current = _eg3d_settings(params)[_PRESET_SIZES.index(name)]
    if not isinstance(current, int) or current < 1:
        return None
    low, high = 0, current
    while low < high:
        middle = (low + high + 1) // 2
        if fits(params.model_copy(update={name: middle})):
            low = middle
        else:
            high = middle - 1
    return low or None


def _gib(count: float) -> str:
    return f"{count / GIB:.1f} GB"


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.1f} days" if seconds >= 86400 else f"{seconds / 3600:.1f} hours"

