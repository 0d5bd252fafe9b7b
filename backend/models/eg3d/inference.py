"""The precision a generator runs inference in on each device (previews, where the user waits for images).

On CUDA the device's half precision through autocast (bf16 where native, else fp16); elsewhere fp32,
so CPU results stay what they were.
"""

from __future__ import annotations

import torch

from ...device import inference_dtype


def inference_autocast(device):
    """Autocast to the device's inference dtype (a no-op context on a CPU, which stays fp32)."""
    device = torch.device(device)
    dtype = inference_dtype(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
