"""``python -m training.defaults [--only NAME] [--work DIR] [--out DIR] [--quick]`` (what ``build.py train-defaults`` runs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from backend.default_models import DEFAULT_MODELS

from . import DEFAULT_BUILDERS, build_defaults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train-defaults", description=__doc__)
    parser.add_argument("--only", action="append", choices=[builder.name for builder in DEFAULT_BUILDERS], help="build only this default (repeatable)")
    parser.add_argument("--work", type=Path, default=Path("build/train-defaults"), help="renders and resumable runs (default build/train-defaults)")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODELS, help="where the defaults are written (default: inside the package)")
    parser.add_argument("--quick", action="store_true", help="every step at the smallest size, to check the pipeline")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop each training after this long and write what it reached (running again resumes it)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    build_defaults(args.work, args.only, args.out, quick=args.quick, minutes=args.minutes, progress=lambda message: print(message, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the bpy module (Blender) may hang in Python's finalization once it has rendered
