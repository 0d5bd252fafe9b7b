"""``avatar-foundry animate --checkpoint RUN --conditions BUNDLE --out DIR``: bake a PNG sequence."""

from __future__ import annotations

import argparse
from pathlib import Path

from .models import add_store_argument, store_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("animate", help="render every frame of a condition bundle with a trained deferred renderer")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="run folder written by 'train deferred' (default: the embedded renderer, trained on the demo head)")
    parser.add_argument("--conditions", type=Path, required=True, help="condition bundle of the rig's animation (frames x cameras)")
    parser.add_argument("--out", type=Path, required=True, help="writes frames/*.png and frames.json here; a rerun resumes")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per batch (default 8 on a GPU, 2 on the CPU)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate written to frames.json (default: the bundle's, else 24)")
    parser.add_argument("--device", default=None, help="torch device (default: the best available)")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def default_batch_size(device) -> int:
    return 8 if device.type == "cuda" else 2


def run(args: argparse.Namespace) -> int:
    from backend.default_models import DEFAULT_RENDERER_NOTICE, default_renderer
    from backend.device import inference_dtype, pick_device
    from backend.models.deferred.baking import bake_animation
    from backend.models.deferred.checkpoint import load_renderer
    from backend.progress import ConsoleProgress
    from blender_addon.formats.notices import write_notices

    device = pick_device(args.device)
    checkpoint = args.checkpoint or default_renderer()
    if args.checkpoint is None:
        print(DEFAULT_RENDERER_NOTICE)
    renderer = load_renderer(checkpoint, store_from_args(args), device, inference_dtype(device))
    result = bake_animation(renderer, checkpoint, args.conditions, args.out, ConsoleProgress(),
                            args.batch_size or default_batch_size(device), args.fps)
    if args.checkpoint is None:
        write_notices(args.out, [DEFAULT_RENDERER_NOTICE])
    print(f"wrote {result.frames_written} frames ({result.frames_reused} kept from an earlier run); {result.manifest}")
    return 0
