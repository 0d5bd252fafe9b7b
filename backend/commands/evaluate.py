"""``avatar-foundry evaluate --checkpoint RUN --data DIR``: PSNR/SSIM (and masked) on held-out renders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .models import add_store_argument, store_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="image metrics of a trained deferred renderer on held-out renders of a deferred dataset")
    parser.add_argument("--checkpoint", type=Path, required=True, help="run folder written by 'train deferred'")
    parser.add_argument("--data", type=Path, required=True, help="deferred dataset (renders with a target pass)")
    parser.add_argument("--split", choices=("held-out", "all"), default="held-out",
                        help="'held-out': only renders the run did not train on (its --holdout-* settings)")
    parser.add_argument("--out", type=Path, default=None, help="also write the renders and evaluation.json here")
    parser.add_argument("--device", default=None, help="torch device (default: the best available)")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.device import inference_dtype, pick_device
    from backend.models.deferred.checkpoint import load_renderer, read_renderer_config
    from backend.progress import ConsoleProgress
    from training.deferred.evaluation import evaluate_renderer

    device = pick_device(args.device)
    _, extra = read_renderer_config(args.checkpoint)
    renderer = load_renderer(args.checkpoint, store_from_args(args), device, inference_dtype(device))
    summary = evaluate_renderer(renderer, args.data, extra.get("hold_out"), ConsoleProgress(), args.split, args.out)
    print(json.dumps({key: value for key, value in summary.items() if key != "per_render"}, indent=2))
    return 0
