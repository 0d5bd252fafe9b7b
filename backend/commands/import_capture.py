"""``avatar-foundry import-capture CAPTURE --out DATASET``: captured frames + tracked proxies -> deferred dataset."""

from __future__ import annotations

import argparse
from pathlib import Path


def _colour(text: str) -> tuple[int, int, int] | None:
    if text == "none":
        return None
    parts = text.split(",")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= value <= 255 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not 'none' or R,G,B with values 0-255")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import-capture", help="turn captured multi-view frames with tracked proxy passes into a deferred dataset")
    parser.add_argument("capture", type=Path, help="capture folder (capture.json + <camera>/<frame>/...; see training/datasets/deferred_capture.py)")
    parser.add_argument("--out", type=Path, required=True, help="deferred dataset folder to write")
    parser.add_argument("--background", type=_colour, default=(255, 255, 255),
                        help="R,G,B composited behind the matte (default white, as DiffusionAvatars), or 'none'")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.progress import ConsoleProgress
    from training.datasets.deferred_capture import import_capture

    bundle = import_capture(args.capture, args.out, ConsoleProgress(), args.background)
    print(f"imported {len(bundle.renders)} renders ({len(bundle.views)} cameras, {len(bundle.frames)} frames) into {args.out}")
    return 0
