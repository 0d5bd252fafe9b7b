"""``avatar-foundry train nphm --data HEADS --out RUN [--config tiny|full]`` (also under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register_train(trainers: argparse._SubParsersAction) -> None:
    parser = trainers.add_parser("nphm", help="train a neural parametric head (NPHM) on a folder of head meshes; rerun the same command to resume")
    parser.add_argument("--data", type=Path, required=True,
                        help="folder of head meshes (glTF/OBJ/PLY): <subject>.ply neutrals, or <subject>/neutral.ply + posed heads "
                             "with the neutral's vertices (see training/nphm/dataset.py)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: the head checkpoint, training codes, train state, stats")
    parser.add_argument("--config", choices=("tiny", "full"), default="full", help="preset (training/nphm/config.py); full = the published sizes")
    parser.add_argument("--direction", choices=("backward", "forward"), default=None,
                        help="expression deformation: backward with 2 ambient coordinates (DiffusionAvatars, default) or forward (original NPHM)")
    parser.add_argument("--identity-steps", type=int, default=None, help="steps of the identity stage")
    parser.add_argument("--expression-steps", type=int, default=None, help="steps of the expression stage (skipped without posed heads)")
    parser.add_argument("--batch-size", type=int, default=None, help="subjects or posed heads per step over all processes")
    parser.add_argument("--tick-steps", type=int, default=None, help="steps between stats lines (and snapshots every few ticks)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="torch device (default: the best available; under torchrun cuda:LOCAL_RANK)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.progress import ConsoleProgress
    from training.distributed import cleanup, init_distributed
    from training.nphm.config import configure
    from training.nphm.trainer import train_nphm

    config = configure(args.config, direction=args.direction, identity_steps=args.identity_steps, expression_steps=args.expression_steps,
                       batch_size=args.batch_size, tick_steps=args.tick_steps, seed=args.seed)
    context = init_distributed(args.device)
    try:
        result = train_nphm(args.data, args.out, config, ConsoleProgress(), context)
    finally:
        cleanup(context)
    if context.is_main:
        print(f"trained {result.step} steps; head in {result.run_dir} (register it with 'avatar-foundry models add {result.run_dir} --as NAME --role nphm')")
    return 0
