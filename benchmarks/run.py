"""Runs every ``benchmarks/bench_*.py`` (or those named) and writes one JSON report with the device.

Each benchmark module has ``run(device) -> dict`` returning its figures (units in the key names,
e.g. ``images_per_s``); one that takes ``options`` as well gets the command-line options (``--tiny``,
the output folder, the time budget, the sections). The report goes to stdout and to
``benchmarks/results/<host>-<device>.json``, or to ``--out``: a ``.json`` file, or a folder that
receives ``bench.json`` and what the benchmarks write beside it (``gpu``: ``report.json`` as it goes,
profiler tables, ``summary.txt``).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from backend.device import describe, pick_device  # noqa: E402
from blender_addon.formats.files import atomic_write_json  # noqa: E402


def discover(names: list[str]) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    if names:
        found = [path for path in found if path.stem.removeprefix("bench_") in names]
        missing = set(names) - {path.stem.removeprefix("bench_") for path in found}
        if missing:
            raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(missing))}")
    return found


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class BenchOptions:
    tiny: bool = False
    out_dir: Path | None = None
    budget_s: float | None = None
    sections: list[str] | None = None


def run_benchmark(module, device, options: BenchOptions) -> dict:
    if "options" in inspect.signature(module.run).parameters:
        return module.run(device, options=options)
    return module.run(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (file name without bench_), default all")
    parser.add_argument("--device", default=None, help="torch device, default the best available")
    parser.add_argument("--out", type=Path, default=None, help="the JSON report: a .json file, or a folder (bench.json + the benchmarks' files)")
    parser.add_argument("--tiny", action="store_true", help="gpu: the same code at tiny sizes (runs on a CPU; figures mean nothing)")
    parser.add_argument("--budget-s", type=float, default=None, help="gpu: seconds the whole run may take (default 420)")
    parser.add_argument("--sections", nargs="*", default=None, metavar="MODULE.FUNCTION",
                        help="gpu: only these sections, e.g. eg3d.throughput diffusion.multiview")
    args = parser.parse_args()
    out_dir = args.out if args.out is not None and args.out.suffix != ".json" else None
    options = BenchOptions(args.tiny, out_dir, args.budget_s, args.sections)
    device = pick_device(args.device)
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        **describe(device),
        "results": {},
    }
    failed = False
    for path in discover(args.names):
        name = path.stem.removeprefix("bench_")
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            report["results"][name] = run_benchmark(load(path), device, options)
        except Exception as error:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            report["results"][name] = {"error": f"{type(error).__name__}: {error}"}
            failed = True
        report["results"][name]["wall_s"] = round(time.perf_counter() - start, 2)
    safe_device = "".join(c if c.isalnum() else "-" for c in report["device_name"])[:60]
    out = out_dir / "bench.json" if out_dir else args.out or HERE / "results" / f"{platform.node()}-{safe_device}.json"
    atomic_write_json(out, report)
    print(json.dumps(report, indent=2))
    print(f"[bench] wrote {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
