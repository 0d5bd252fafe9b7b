"""``avatar-foundry train deferred --data DIR --out RUN (--base NAME | --prior none) [--mode direct]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.models.deferred.priors import LEARNING_RATE_SCHEDULES, PRIORS
from backend.models.deferred.scratch_unet import ScratchUNetConfig, scratch_unet_with_widths

from .models import add_store_argument, store_from_args


def register_train(trainers: argparse._SubParsersAction) -> None:
    parser = trainers.add_parser("deferred", help="train the deferred diffusion renderer (DiffusionAvatars) on a deferred dataset")
    parser.add_argument("--data", type=Path, required=True, help="deferred dataset: a condition bundle whose renders carry a target pass")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, train state, validation renders); reused to resume")
    parser.add_argument("--prior", choices=PRIORS, default="latent-diffusion",
                        help="'latent-diffusion': a ControlNet on a frozen Stable Diffusion base; 'none': a small UNet trained "
                             "from scratch in pixel space (no base model; for small images, e.g. --resolution 64)")
    parser.add_argument("--base", default="", help="model-store name of the frozen Stable Diffusion 1.x/2.x base (default: the only one "
                                                   "registered; not with --prior none)")
    parser.add_argument("--scratch-widths", type=int, nargs="+", default=list(ScratchUNetConfig().block_out_channels), metavar="WIDTH",
                        help="with --prior none: the from-scratch UNet's channel widths, one per level")
    parser.add_argument("--expression-in-time-embedding", action="store_true",
                        help="with --prior none: the expression code also shifts every residual block through the timestep "
                             "embedding, not only the attention at the coarse levels (use it when the proxy does not show "
                             "the expression, e.g. a head at rest)")
    parser.add_argument("--mode", choices=("diffusion", "direct"), default="diffusion",
                        help="'direct': the one-pass baseline without diffusion, for comparison")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--resolution", type=int, default=512, help="side of the square random crops trained on")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of the networks (default: 1e-4 on a latent-diffusion prior, 1e-3 from scratch)")
    parser.add_argument("--lr-schedule", choices=LEARNING_RATE_SCHEDULES, default="constant",
                        help="'cosine': both learning rates decay to zero at the last step")
    parser.add_argument("--warmup-steps", type=int, default=0, help="steps over which the learning rates rise from zero")
    parser.add_argument("--lr-planes", type=float, default=1e-2, help="learning rate of the tri-plane features")
    parser.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), default="auto")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--validate-every", type=int, default=1000)
    parser.add_argument("--holdout-views", nargs="*", default=[], metavar="VIEW", help="view ids kept out of training")
    parser.add_argument("--holdout-frame-stride", type=int, default=0, help="hold out every N-th frame (0: none)")
    parser.add_argument("--triplane-resolution", type=int, default=512)
    parser.add_argument("--triplane-channels", type=int, default=16, help="feature channels per plane (three planes, concatenated)")
    parser.add_argument("--prediction-type", choices=("auto", "epsilon", "v_prediction"), default="auto",
                        help="'auto' follows the base model")
    parser.add_argument("--zero-terminal-snr", action=argparse.BooleanOptionalAction, default=None,
                        help="rescale the noise schedule to zero terminal SNR, with trailing timesteps (default: on for "
                             "v-prediction bases, off for epsilon ones, which cannot use it)")
    parser.add_argument("--steps-inference", type=int, default=20, help="sampling steps of validation and later renders")
    parser.add_argument("--seed", type=int, default=181998)
    parser.add_argument("--device", default=None, help="torch device (default: the best available)")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.device import pick_device
    from backend.models.deferred.channels import ChannelLayout
    from backend.progress import ConsoleProgress
    from training.deferred.dataset import HoldOut
    from training.deferred.trainer import DeferredTrainOptions, train_deferred

    store = store_from_args(args)
    options = DeferredTrainOptions(
        base=store.pick(args.base, "base", "base") if args.prior == "latent-diffusion" else args.base, prior=args.prior,
        scratch_unet=scratch_unet_with_widths(args.scratch_widths, args.expression_in_time_embedding), mode=args.mode, resolution=args.resolution, steps=args.steps, batch_size=args.batch_size,
        gradient_accumulation=args.grad_accum, learning_rate_networks=args.lr, learning_rate_planes=args.lr_planes,
        learning_rate_schedule=args.lr_schedule, warmup_steps=args.warmup_steps,
        mixed_precision=args.mixed_precision, checkpoint_every=args.checkpoint_every, validate_every=args.validate_every,
        hold_out=HoldOut(tuple(args.holdout_views), args.holdout_frame_stride),
        channels=ChannelLayout(triplane_channels=args.triplane_channels), triplane_resolution=args.triplane_resolution,
        prediction_type=args.prediction_type, zero_terminal_snr=args.zero_terminal_snr, num_inference_steps=args.steps_inference,
        seed=args.seed,
    )
    result = train_deferred(args.data, args.out, options, store, ConsoleProgress(), pick_device(args.device))
    print(f"trained {result.steps} steps, last loss {result.losses[-1]:.5f}; checkpoint in {result.out_dir}")
    return 0

