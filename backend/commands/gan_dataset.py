"""``avatar-foundry gan-dataset BUNDLE... --out DATASET``: Cycles renders of characters as a 3D GAN dataset."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gan-dataset", help="turn condition bundles rendered with the character as target into a 3D GAN dataset (no painting)",
        description="Every render of the bundles, matted on black with its head mask and reduced to --resolution: train the "
                    "3D GAN on renders of your own characters when no Stable Diffusion weights are registered.")
    parser.add_argument("bundles", type=Path, nargs="+", help="folders written by render-conditions --target-object (one per character)")
    parser.add_argument("--out", type=Path, required=True, help="the dataset folder to write (dataset.json + images/)")
    parser.add_argument("--resolution", type=int, default=64, help="image size of the dataset (default %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.formats.multiview_dataset import read_dataset
    from training.datasets.rendered_characters import dataset_from_renders

    dataset = dataset_from_renders(args.bundles, args.out, args.resolution)
    print(f"wrote {len(read_dataset(dataset).items)} images into {dataset} (train it: avatar-foundry train eg3d --data {dataset})")
    return 0
