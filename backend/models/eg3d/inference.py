"""How a trained generator is set up for inference on each device (previews, meshes, style-prior pairs).

On CUDA: the device's half precision for autocast (bf16 where native, else fp16), channels-last
weights (the convolutions of the tri-plane backbone and the super-resolution then run on tensor
cores in NHWC without layout copies), cuDNN autotuning (shapes repeat from image to image). Every
shape in the generator is static for a given batch size and rendering resolution and nothing in it
waits for the CPU, so a forward can be captured once as a CUDA graph and replayed
(:class:`GraphedForward`: one launch instead of hundreds, which is what a batch of 1 is bound by), or
compiled (``torch.compile``). Elsewhere fp32 and no changes: CPU results stay bit-for-bit what they
were. Figures: ``benchmarks/gpu/eg3d.py``.
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


def inference_autocast(device, cache_enabled: bool = True):
    """Autocast to the device's inference dtype (a no-op context on a CPU, which stays fp32)."""
    device = torch.device(device)
    dtype = inference_dtype(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32, cache_enabled=cache_enabled)


class GraphedForward:
    """``function(*inputs)`` captured once as a CUDA graph for these input shapes, then replayed: a call
    copies new inputs into the captured ones and returns the captured outputs (overwritten by the next
    call: copy what must be kept). Autocast runs inside with its weight cache off, as capture requires."""

    WARMUP_CALLS = 2

    def __init__(self, function, *example_inputs: torch.Tensor) -> None:
        self._inputs = [tensor.clone() for tensor in example_inputs]
        device = self._inputs[0].device

        def run():
            with torch.inference_mode(), inference_autocast(device, cache_enabled=False):
                return function(*self._inputs)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_CALLS):  # kernel selection and allocations happen before the capture
                run()
        torch.cuda.current_stream(device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._outputs = run()

    def __call__(self, *inputs: torch.Tensor):
        for captured, given in zip(self._inputs, inputs):
            captured.copy_(given)
        self._graph.replay()
        return self._outputs


def compile_generator(generator, device) -> tuple[Any, str]:
    """``torch.compile`` of the generator (CUDA graphs on CUDA); returns it and the mode used."""
    mode = COMPILE_MODE_CUDA if torch.device(device).type == "cuda" else "default"
    # dynamic=False: one specialised graph per batch size, as CUDA graphs need static shapes anyway
    return torch.compile(generator, mode=mode, dynamic=False), mode
