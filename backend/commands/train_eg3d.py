"""``avatar-foundry train eg3d --data DIR --out RUN [--config tiny|small|full]`` (also under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register_train(trainers: argparse._SubParsersAction) -> None:
    parser = trainers.add_parser("eg3d", help="train the tri-plane 3D GAN on a multi-view dataset; rerun the same command to resume")
    parser.add_argument("--data", type=Path, required=True, help="multi-view dataset folder (dataset.json + images)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, train state, stats, sample grids")
    parser.add_argument("--config", choices=("tiny", "small", "full"), default="small", help="preset (training/eg3d/config.py)")
    parser.add_argument("--total-images", type=int, default=None, help="train until D has seen this many real images")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step over all processes")
    parser.add_argument("--r1-gamma", type=float, default=None, help="R1 strength (raise it for small batches)")
    parser.add_argument("--pose-conditioning", choices=("coarse_to_fine", "camera", "none"), default=None,
                        help="discriminator labels: StyleAvatar3D's coarse-to-fine (default), EG3D's camera, or none")
    parser.add_argument("--p-high", type=float, default=None, help="chance a confident view keeps its fine label")
    parser.add_argument("--p-low", type=float, default=None, help="chance another view keeps its fine label")
    parser.add_argument("--tick-images", type=int, default=None, help="images between ticks (stats and sample grid)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="torch device (default: the best available; under torchrun cuda:LOCAL_RANK)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.progress import ConsoleProgress
    from training.distributed import cleanup, init_distributed
    from training.eg3d.config import configure
    from training.eg3d.trainer import train_eg3d

    config = configure(args.config, total_images=args.total_images, batch_size=args.batch_size, r1_gamma=args.r1_gamma,
                       pose_conditioning=args.pose_conditioning, p_high=args.p_high, p_low=args.p_low,
                       tick_images=args.tick_images, seed=args.seed)
    context = init_distributed(args.device)
    try:
        result = train_eg3d(args.data, args.out, config, ConsoleProgress(), context)
    finally:
        cleanup(context)
    if context.is_main:
        print(f"trained to {result.images_seen} images ({result.step} steps); generator in {result.run_dir}")
    return 0
