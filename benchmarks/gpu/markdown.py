"""Markdown tables of a ``bench gpu`` report, for benchmarks/RESULTS.md: every figure copied from the JSON,
none computed beyond the ratios the report holds.

    python -m benchmarks.gpu.markdown benchmarks/gpu-run-1/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

GIB = 1024 ** 3


def header(report: dict[str, Any]) -> str:
    return (f"`{report.get('device_name')}` · torch {report.get('torch')} (CUDA {report.get('cuda')}) · "
            f"run started {report.get('created')} · {report.get('elapsed_s')} s of a {report.get('budget_s')} s budget")


def _cell(value: Any, key: str) -> str:
    if not isinstance(value, dict):
        return "–"
    if "error" in value:
        return "error: " + str(value["error"])[:60]
    if "skipped" in value:
        return "skipped (time box)"
    return str(value.get(key, "–"))


def eg3d_table(sections: dict[str, Any]) -> str:
    eager, compiled = sections.get("eg3d_generator", {}), sections.get("eg3d_generator_compiled", {})
    rows = ["| variant | img/s batch 1 | img/s batch 8 | vs fp32 (1 / 8) |", "| --- | --- | --- | --- |"]
    variants = dict.fromkeys(key.rsplit("_batch", 1)[0] for key, value in eager.items() if "_batch" in key and isinstance(value, dict))
    for name in variants:
        one, eight = eager.get(f"{name}_batch1"), eager.get(f"{name}_batch8")
        ratios = " / ".join(str(entry.get("speedup_vs_fp32", "–")) if isinstance(entry, dict) else "–" for entry in (one, eight))
        rows.append(f"| {name} | {_cell(one, 'images_per_s')} | {_cell(eight, 'images_per_s')} | {ratios} |")
    if compiled:
        cells = [_cell(compiled.get(f"batch{batch}"), "images_per_s") for batch in (1, 8)]
        rows.append(f"| torch.compile ({compiled.get('mode', '')}) | {cells[0]} | {cells[1]} | |")
    return "\n".join(rows)


def diffusion_table(section: dict[str, Any], compiled: dict[str, Any]) -> str:
    rows = ["| batch | stock fp16 s/img | ours s/img | stock / ours | ours compiled s/img (first call s) |", "| --- | --- | --- | --- | --- |"]
    for batch in (1, 8):
        entry = compiled.get(f"batch{batch}")
        compiled_cell = _cell(entry, "s_per_image")
        if isinstance(entry, dict) and "first_call_with_compile_s" in entry:
            compiled_cell += f" ({entry['first_call_with_compile_s']})"
        rows.append(f"| {batch} | {_cell(section.get(f'stock_fp16_batch{batch}'), 's_per_image')} | "
                    f"{_cell(section.get(f'ours_batch{batch}'), 's_per_image')} | {section.get(f'speedup_vs_stock_batch{batch}', '–')} | {compiled_cell} |")
    return "\n".join(rows)


def memory_table(section: dict[str, Any]) -> str:
    rows = ["| work | batch | peak GiB | GiB per image above the loaded models |", "| --- | --- | --- | --- |"]
    for key, value in section.items():
        if isinstance(value, dict) and "peak_bytes" in value and value["peak_bytes"]:
            work, batch = key.rsplit("_batch", 1)
            rows.append(f"| {work} | {batch} | {value['peak_bytes'] / GIB:.2f} | {value['per_image_gib']} |")
    return "\n".join(rows)


def training_table(section: dict[str, Any]) -> str:
    rows = ["| trainer | setting | steps/s | images/s |", "| --- | --- | --- | --- |"]
    for name in ("eg3d", "deferred", "style_prior"):
        value = section.get(name, {})
        setting = value.get("preset") or value.get("options", "") if isinstance(value, dict) else ""
        rows.append(f"| {name} | {setting} | {_cell(value, 'steps_per_s')} | {_cell(value, 'images_per_s')} |")
    return "\n".join(rows)


def mesh_lines(section: dict[str, Any]) -> str:
    lines = []
    for name in ("sphere_head", "random_generator", ""):
        value = section.get(name) if name else section
        if isinstance(value, dict) and "total_s" in value:
            lines.append(f"Mesh + texture export ({name or 'generator'}): {value['total_s']} s (grid {value.get('grid')}, texture "
                         f"{value.get('texture_size')}, {value.get('faces')} faces); stages (s): {value.get('stages_s')}")
        elif isinstance(value, dict) and name and ("error" in value or "skipped" in value):
            lines.append(f"Mesh + texture export ({name}): {_cell(value, 'total_s')}")
    return "\n\n".join(lines) or "Mesh + texture export: –"


def render(report: dict[str, Any]) -> str:
    sections = report.get("sections", {})
    mesh = sections.get("mesh_texture_export", {})

    parts = [header(report), "", "EG3D generator (" + str(sections.get("eg3d_generator", {}).get("configuration", "")) + ")", "",
             eg3d_table(sections), "", "Multi-view painting, " + str(sections.get("multiview_controlnet", {}).get("configuration", "")), "",
             diffusion_table(sections.get("multiview_controlnet", {}), sections.get("multiview_compiled", {})), "",
             "Deferred renderer, " + str(sections.get("deferred_renderer", {}).get("configuration", "")), "",
             diffusion_table(sections.get("deferred_renderer", {}), sections.get("deferred_compiled", {})), "",
             mesh_lines(mesh), "",
             memory_table(sections.get("memory_per_image", {})), "", training_table(sections.get("training", {}))]
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(render(json.loads(Path(argv[0]).read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
