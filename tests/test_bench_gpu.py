"""The one-run GPU benchmark (``python build.py bench gpu``) at tiny sizes on the CPU: GPU time is short,
so the script that spends it must be known to run through every section before it gets there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu.markdown import render

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("eg3d_generator", "multiview_controlnet", "deferred_renderer", "mesh_texture_export", "memory_per_image",
            "training", "profile_multiview", "profile_eg3d")


def run_bench(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "AVATAR_FOUNDRY_DEVICE": "cpu"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "gpu", "--tiny", "--out", str(out), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_tiny_gpu_benchmark_writes_every_section_profiles_and_summary(tmp_path):
    """A maintainer preparing the GPU run gets, from one command, a report with every section measured
    (stock vs ours side by side with their ratio, per-image memory entries, each trainer's steps/s), the
    profiler tables as files, a summary table and the report's figures as Markdown tables: no section
    fails at tiny sizes."""
    result = run_bench(tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(SECTIONS) <= set(report["sections"])
    for name in SECTIONS:
        section = report["sections"][name]
        assert "error" not in section and "skipped" not in section, (name, section)
        nested = [value for value in section.values() if isinstance(value, dict) and ("error" in value or "skipped" in value)]
        assert not nested, (name, nested)
    multiview = report["sections"]["multiview_controlnet"]
    assert {"stock_fp16_batch1", "ours_batch2", "speedup_vs_stock_batch2"} <= set(multiview)
    assert multiview["ours_batch2"]["s_per_image"] > 0
    assert "speedup_vs_stock_batch1" in report["sections"]["deferred_renderer"]
    assert {"multiview_batch1", "multiview_batch2", "deferred_batch1"} <= set(report["sections"]["memory_per_image"])
    training = report["sections"]["training"]
    assert all(training[name]["steps_per_s"] > 0 for name in ("eg3d", "deferred", "style_prior"))
    mesh = report["sections"]["mesh_texture_export"]
    assert mesh["sphere_head"]["faces"] > 0 and mesh["random_generator"]["faces"] > 0
    assert any(span.startswith("density grid done") for span in mesh["sphere_head"]["stages_s"])
    for table in ("profile_multiview_controlnet.txt", "profile_eg3d_generator.txt"):
        text = (tmp_path / "out" / table).read_text()
        assert "Self CPU" in text and "aten::" in text
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "multiview_controlnet" in summary and "steps_per_s" in summary
    tables = render(report)  # what RESULTS.md's GPU section is written from
    assert "| 1 | " in tables and "| eg3d | tiny |" in tables
    bench = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert bench["device"] == "cpu" and bench["results"]["gpu"]["sections"].keys() == report["sections"].keys()


def test_gpu_benchmark_without_a_gpu_and_without_tiny_skips_itself(tmp_path):
    """Run on a machine without CUDA (``build.py bench`` runs every benchmark), the GPU benchmark says it
    was skipped and why instead of taking an hour on the CPU."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "AVATAR_FOUNDRY_DEVICE": "cpu"}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "gpu", "--out", str(tmp_path / "r.json")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "needs a CUDA device" in json.loads((tmp_path / "r.json").read_text())["results"]["gpu"]["skipped"]
