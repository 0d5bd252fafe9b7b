"""Everything issue 22 measures on a GPU, in ONE run of about 7 minutes (``python build.py bench gpu --out DIR``).

Sections, in order of importance (a run cut short keeps what came first), each guarded and time-boxed
(benchmarks/gpu/session.py): EG3D generator fp32 baseline vs optimized; SD 1.5-size ControlNet, stock
diffusers vs our painter; deferred renderer, stock vs ours; mesh + texture export; peak memory per image;
training steps/s of the three trainers; profiler tables; then the torch.compile variants (slow to
compile, so last). ``DIR/report.json`` is rewritten after every section; profiler tables go beside it.

Random weights at real sizes, built on the device from the configs the project ships; nothing is
downloaded. ``--tiny`` runs the same code at tiny sizes (a CPU smoke run; its figures mean nothing).
Without a CUDA device and without ``--tiny`` it skips itself.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

SECTIONS: tuple[tuple[str, str, float], ...] = (
    ("eg3d", "throughput", 45),
    ("diffusion", "multiview", 70),
    ("diffusion", "deferred", 60),
    ("eg3d", "mesh_export", 45),
    ("diffusion", "memory", 35),
    ("training", "trainers", 80),
    ("diffusion", "profile", 25),
    ("eg3d", "profile", 15),
    ("eg3d", "compiled_throughput", 75),
    ("diffusion", "compiled_multiview", 100),
    ("diffusion", "compiled_deferred", 100),
)
"""(module in benchmarks/gpu, function, time box in seconds)."""
COMPILE_SECTIONS = ("eg3d.compiled_throughput", "diffusion.compiled_multiview", "diffusion.compiled_deferred")
"""Left out of a --tiny run unless named with --sections: compiling on a CPU takes minutes."""
DEFAULT_BUDGET_S = 420.0


def run(device, options=None) -> dict[str, Any]:
    import importlib
    from datetime import datetime, timezone

    import torch

    from backend.device import describe

    from benchmarks.gpu.models import Sizes
    from benchmarks.gpu.session import Session
    from benchmarks.gpu.summary import summary_table

    tiny = bool(options and options.tiny)
    if device.type != "cuda" and not tiny:
        return {"skipped": "needs a CUDA device (--tiny runs it at tiny sizes anywhere)"}
    sizes = Sizes.small() if tiny else Sizes.issue()
    out_dir = options.out_dir if options and options.out_dir else _default_out_dir()
    budget = options.budget_s if options and options.budget_s else DEFAULT_BUDGET_S
    facts = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **describe(device),
             "cuda": torch.version.cuda, **_device_facts(device),
             "sizes": "tiny (CPU smoke run; figures mean nothing)" if tiny else "issue 22's"}
    session = Session(out_dir, facts, budget)
    _quiet_diffusers()
    for module_name, function_name, box in chosen_sections(options.sections if options else None, tiny):
        function: Callable = getattr(importlib.import_module(f"benchmarks.gpu.{module_name}"), function_name)
        function(session, device, sizes, box)
    print(summary_table(session.report), file=sys.stderr, flush=True)
    return {"report": str(session.report_path), **session.report}


def chosen_sections(names: list[str] | None, tiny: bool) -> list[tuple[str, str, float]]:
    """All sections in their order of importance (the compile ones left out of a --tiny run), or the named
    ones in the order named (a short run puts first what it is for)."""
    by_name = {f"{module}.{function}": (module, function, box) for module, function, box in SECTIONS}
    if names:
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ValueError(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
        return [by_name[name] for name in names]
    return [section for name, section in by_name.items() if not (tiny and name in COMPILE_SECTIONS)]


def _quiet_diffusers() -> None:
    """Random-weight models cast with ``.to(dtype)`` make diffusers warn once per model; nothing to act on here."""
    from diffusers.utils import logging

    logging.set_verbosity_error()


def _default_out_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent / "results" / "gpu"


def _device_facts(device) -> dict[str, Any]:
    import torch

    if device.type != "cuda":
        return {}
    properties = torch.cuda.get_device_properties(device)
    return {"gpu_memory_gib": round(properties.total_memory / 1024 ** 3, 1), "compute_capability": f"{properties.major}.{properties.minor}",
            "bf16_native": torch.cuda.is_bf16_supported(including_emulation=False)}
