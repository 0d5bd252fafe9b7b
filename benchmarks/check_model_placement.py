"""GPU check of the memory plan's placement (issue 19, item 10): models loaded on the CPU stay there under
CPU offload and go to the GPU only when the plan keeps them there, and what one image then peaks at.

Run on a CUDA machine: ``PYTHONPATH=$PWD python benchmarks/check_model_placement.py`` (about a minute on
an H100/H200; SD 1.5-sized random weights, pose + depth ControlNets, 512 px, 4 steps, fp16). Prints one
JSON object: per memory mode, where the UNet's weights are after assembly, the free memory the plan saw,
the plan, and ``torch.cuda.max_memory_allocated`` for one image (``peak_gib``) next to the weights'
size (``weights_gib``), so ``memory_plan``'s per-image assumptions can be checked against the difference.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path


def main() -> dict:
    import torch

    from backend.memory_plan import GIB
    from backend.models.tiny import write_tiny_tokenizer
    from backend.multiview.painter import Painter
    from benchmarks.bench_multiview import _planned, _settings, build_sd15_sized

    assert torch.cuda.is_available(), "this check needs a CUDA GPU"
    device = torch.device("cuda")
    results: dict = {"device": torch.cuda.get_device_name(device)}
    with tempfile.TemporaryDirectory() as folder:
        write_tiny_tokenizer(Path(folder) / "tokenizer")
        for mode in ("full", "low", "auto"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base, controlnets = build_sd15_sized(Path(folder) / "tokenizer", torch.device("cpu"), torch.float16)
            settings = _settings(4, 7.5, 1)
            settings.memory, settings.resolution = mode, 512
            free_before = torch.cuda.mem_get_info(device)[0]
            painter = Painter.assemble(base, controlnets, settings, device, torch.float16)
            weights = sum(p.numel() * p.element_size() for m in (base.unet, base.vae, base.text_encoder, *controlnets) for p in m.parameters())
            unet_device = next(base.unet.parameters()).device.type
            images, pose, depth = _planned(1, 512)
            painter.paint(images, [0], [[pose], [depth]], settings, 512, lambda fraction: None)
            results[mode] = {"unet_weights_after_assembly": unet_device, "free_gib_before": round(free_before / GIB, 2),
                             "weights_gib": round(weights / GIB, 2), "peak_gib": round(torch.cuda.max_memory_allocated(device) / GIB, 2),
                             "cpu_offload": unet_device == "cpu"}
            del painter, base, controlnets
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
