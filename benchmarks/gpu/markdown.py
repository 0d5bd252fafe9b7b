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
    rows = ["| batch | fp32 baseline img/s | optimized img/s | speedup | compiled img/s (compile s) |", "| --- | --- | --- | --- | --- |"]
    for batch in (1, 8):
        compiled_cell = _cell(compiled.get(f"batch{batch}"), "images_per_s")
        if isinstance(compiled.get(f"batch{batch}"), dict) and "compile_s" in compiled[f"batch{batch}"]:
            compiled_cell += f" ({compiled[f'batch{batch}']['compile_s']})"
        rows.append(f"| {batch} | {_cell(eager.get(f'fp32_baseline_batch{batch}'), 'images_per_s')} | "
                    f"{_cell(eager.get(f'optimized_batch{batch}'), 'images_per_s')} | {eager.get(f'speedup_batch{batch}', '–')} | {compiled_cell} |")
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


def render(report: dict[str, Any]) -> str:
    sections = report.get("sections", {})
    mesh = sections.get("mesh_texture_export", {})

    parts = [header(report), "", "EG3D generator (" + str(sections.get("eg3d_generator", {}).get("configuration", "")) + ")", "",
             eg3d_table(sections), "", "Multi-view painting, " + str(sections.get("multiview_controlnet", {}).get("configuration", "")), "",
             diffusion_table(sections.get("multiview_controlnet", {}), sections.get("multiview_compiled", {})), "",
             "Deferred renderer, " + str(sections.get("deferred_renderer", {}).get("configuration", "")), "",
             diffusion_table(sections.get("deferred_renderer", {}), sections.get("deferred_compiled", {})), "",
             f"Mesh + texture export: {mesh.get('total_s', mesh.get('error', '–'))} s (grid {mesh.get('grid')}, texture {mesh.get('texture_size')}, "
             f"{mesh.get('faces')} faces); stages: {mesh.get('stages_s')}", "",
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
