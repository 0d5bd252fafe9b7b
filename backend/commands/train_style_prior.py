"""``avatar-foundry train style-prior --generator RUN --out RUN2``: the image -> w diffusion prior."""

from __future__ import annotations

import argparse
from pathlib import Path


def register_train(trainers: argparse._SubParsersAction) -> None:
    parser = trainers.add_parser("style-prior", help="train the image-guided style prior (diffusion over w) for a trained EG3D generator")
    parser.add_argument("--generator", type=Path, required=True, help="the trained generator's run folder (from 'train eg3d')")
    parser.add_argument("--out", type=Path, required=True, help="run folder of the prior (checkpoint, train state, metrics.json); reused to resume")
    parser.add_argument("--config", choices=("tiny", "small", "full"), default="small", help="size of the prior; w_dim follows the generator")
    parser.add_argument("--encoder", choices=("conv", "clip"), default="conv",
                        help="'conv': an encoder trained with the prior on the generator's renders; 'clip': frozen local CLIP vision weights")
    parser.add_argument("--clip-model", default="", help="with --encoder clip: folder of a CLIPVisionModelWithProjection (save_pretrained)")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per step, split over torchrun's processes")
    parser.add_argument("--pair-reuse", type=int, default=1, help="optimizer steps per rendered batch (raise it when rendering is slow)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--snapshot-every", type=int, default=500)
    parser.add_argument("--nearby-views", type=float, default=0.5, help="share of pairs rendered from a camera near the front")
    parser.add_argument("--truncation-psi", type=float, default=1.0, help="truncation of the w the prior learns from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="torch device (default: the best available)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from backend.progress import ConsoleProgress
    from training.distributed import cleanup, init_distributed
    from training.style_prior.pairs import PairOptions
    from training.style_prior.trainer import StylePriorTrainOptions, train_style_prior

    options = StylePriorTrainOptions(
        config=args.config, encoder=args.encoder, clip_model=str(Path(args.clip_model).resolve()) if args.clip_model else "",
        steps=args.steps, batch_size=args.batch_size, pair_reuse=args.pair_reuse, learning_rate=args.lr,
        snapshot_every=args.snapshot_every, seed=args.seed,
        pairs=PairOptions(truncation_psi=args.truncation_psi, nearby_view_probability=args.nearby_views),
    )
    context = init_distributed(args.device)
    try:
        result = train_style_prior(args.generator, args.out, options, ConsoleProgress(), context.device)
    finally:
        cleanup(context)
    if result.metrics:
        print(json.dumps(result.metrics, indent=2))
        print(f"trained {result.steps} steps, last loss {result.last_loss:.5f}; style prior in {result.out_dir}")
    return 0
