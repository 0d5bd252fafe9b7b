"""``avatar-foundry make-tiny-models DIR``: tiny random diffusion models in the real formats."""

from __future__ import annotations

import argparse
from pathlib import Path

from .models import add_store_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("make-tiny-models", help="write tiny random SD + ControlNet models (for tests and smoke runs)")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--variant", choices=("sd15", "sd21"), default="sd15",
                        help="sd15: epsilon prediction; sd21: linear attention projections and v-prediction")
    parser.add_argument("--image-size", type=int, default=32, help="native image size in pixels (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--register", action="store_true", help="also register them in the model store")
    parser.add_argument("--prefix", default="tiny", help="registered names start with this (default %(default)s)")
    add_store_argument(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..models.tiny import TinySpec, register_tiny_models, write_tiny_models
    from .models import store_from_args

    paths = write_tiny_models(args.directory, TinySpec(variant=args.variant, image_size=args.image_size, seed=args.seed))
    print(f"wrote {paths.base}, {paths.base_single_file} and ControlNets {', '.join(str(p) for p in paths.controlnets.values())}")
    if args.register:
        names = register_tiny_models(store_from_args(args), paths, args.prefix)
        print("registered: " + ", ".join(f"{role}={name}" for role, name in names.items()))
    return 0
