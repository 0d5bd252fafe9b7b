"""``avatar-foundry multiview``: paint a stylized multi-view dataset from a condition bundle;
``avatar-foundry multiview-merge``: join the images of sharded runs into one dataset."""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import timedelta
from pathlib import Path

from blender_addon.formats.errors import FormatError

from .models import add_store_argument, store_from_args

DEFAULT_CONTROLS = "pose,depth"
RANK_WAIT_HOURS = 24


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("multiview", help="paint stylized multi-view training images with SD + ControlNet")
    parser.add_argument("--conditions", type=Path, required=True, help="condition bundle folder (holds conditions.json)")
    parser.add_argument("--base", default="", help="model-store name of the SD 1.x/2.x base model (default: the only one registered)")
    parser.add_argument("--controlnet", default=DEFAULT_CONTROLS,
                        help="controls to use: KIND or KIND=NAME, comma-separated; a bare KIND picks the one ControlNet "
                             "registered with role controlnet-KIND (default %(default)s)")
    parser.add_argument("--control-weights", default="", help="KIND=WEIGHT,... conditioning scales (default 1.0 each)")
    parser.add_argument("--style", required=True, help='style prompt, e.g. "a 3D cartoon character head, Pixar style"')
    parser.add_argument("--out", type=Path, required=True, help="dataset folder; an interrupted run resumes into it")
    parser.add_argument("--per-view", type=int, default=1, help="images per render (default %(default)s)")
    parser.add_argument("--candidates", type=int, default=1, help="candidates per image, the best by pose confidence kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--resolution", type=int, default=0, help="output size; 0 = the base model's native size")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--negative-prompt", default=None)
    parser.add_argument("--attributes", type=Path, default=None, help='JSON file {"category": ["option", ...]} replacing the built-in list')
    parser.add_argument("--attributes-per-image", type=int, default=5)
    parser.add_argument("--front-phrase", default="front view")
    parser.add_argument("--side-phrase", default="side view")
    parser.add_argument("--back-phrase", default="back view")
    parser.add_argument("--back-negative", default=None, help="added to the negative prompt of back views")
    parser.add_argument("--front-max-degrees", type=float, default=None, help="with --back-min-degrees: reclassify views by yaw")
    parser.add_argument("--back-min-degrees", type=float, default=None)
    parser.add_argument("--lora", default=None, help="model-store name of a style LoRA")
    parser.add_argument("--lora-scale", type=float, default=1.0)
    parser.add_argument("--vae", default=None, help="model-store name of a VAE to decode with (default: the base model's own)")
    parser.add_argument("--scheduler", default=None, help="diffusers scheduler class, e.g. UniPCMultistepScheduler")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto")
    parser.add_argument("--memory", choices=("auto", "full", "low"), default="auto",
                        help="small-VRAM mode: CPU offload / VAE slicing and tiling chosen from free GPU memory (auto), none (full) or all (low)")
    parser.add_argument("--background", choices=("black", "white", "keep"), default="black",
                        help="matte painted images onto the 3D GAN's background with the head mask (default %(default)s), or keep SD's")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (pays off for large runs on GPUs)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available; LOCAL_RANK under torchrun)")
    parser.add_argument("--shard", default=None, help="I/N: paint only shard I of N (several machines); under torchrun the rank is used")
    add_store_argument(parser)
    parser.set_defaults(func=_run)

    merge = subparsers.add_parser("multiview-merge", help="join sharded multiview runs into one dataset.json")
    merge.add_argument("out", type=Path, help="the dataset folder to complete")
    merge.add_argument("shards", type=Path, nargs="*", help="other machines' output folders whose images are copied in")
    merge.set_defaults(func=_merge)


def parse_controls(text: str) -> dict[str, str]:
    """'pose,depth=my-depth' -> {'pose': '', 'depth': 'my-depth'}; an empty name stands for the one
    ControlNet registered with that control's role (see ``choose_models``)."""
    controls = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, name = item.partition("=")
        controls[kind] = name
    if not controls:
        raise FormatError("controlnet", "no control given", f"use e.g. --controlnet {DEFAULT_CONTROLS}")
    return controls


def parse_weights(text: str) -> dict[str, float]:
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, value = item.partition("=")
        try:
            weights[kind] = float(value)
        except ValueError:
            raise FormatError("control-weights", f"{item!r} is not KIND=NUMBER") from None
    return weights


def parse_shard(text: str):
    from ..multiview.generation import Shard

    index, _, count = text.partition("/")
    try:
        return Shard(int(index), int(count))
    except ValueError:
        raise FormatError("shard", f"{text!r} is not I/N", "e.g. --shard 0/4") from None


def settings_from_args(args: argparse.Namespace, store):
    from ..multiview.attributes import load_catalog
    from ..multiview.generation import MultiviewSettings, choose_models, embeddings_in_prompts
    from ..multiview.prompts import DEFAULT_BACK_VIEW_NEGATIVE, DEFAULT_NEGATIVE_PROMPT

    catalog = load_catalog(args.attributes) if args.attributes else None
    base, controlnets = choose_models(store, args.base, parse_controls(args.controlnet))
    settings = MultiviewSettings(
        style=args.style, base=base, controlnets=controlnets,
        control_weights=parse_weights(args.control_weights), per_view=args.per_view, candidates=args.candidates,
        seed=args.seed, steps=args.steps, guidance=args.guidance, resolution=args.resolution, batch_size=args.batch_size,
        negative_prompt=DEFAULT_NEGATIVE_PROMPT if args.negative_prompt is None else args.negative_prompt,
        attributes_per_image=args.attributes_per_image,
        attributes={k: list(v) for k, v in catalog.items()} if catalog else None,
        front_phrase=args.front_phrase, side_phrase=args.side_phrase, back_phrase=args.back_phrase,
        back_view_negative=DEFAULT_BACK_VIEW_NEGATIVE if args.back_negative is None else args.back_negative,
        front_max_degrees=args.front_max_degrees, back_min_degrees=args.back_min_degrees,
        lora=args.lora, lora_scale=args.lora_scale, scheduler=args.scheduler, precision=args.precision, compile=args.compile, memory=args.memory,
        background=args.background, vae=args.vae,
    )
    settings.embeddings = embeddings_in_prompts(store, settings)
    return settings


def _run(args: argparse.Namespace) -> int:
    """Single process, one shard of several machines (--shard), or one rank under torchrun: the
    ranks paint disjoint images into one folder, then rank 0 writes dataset.json."""
    from training.distributed import barrier, cleanup, init_distributed

    from ..multiview.generation import Shard, generate_multiview, write_manifest
    from ..progress import ConsoleProgress

    store = store_from_args(args)
    settings = settings_from_args(args, store)
    # Ranks meet only once, after painting; on a resume one rank may finish long before another.
    ranks = init_distributed(args.device, timeout=timedelta(hours=RANK_WAIT_HOURS))
    shard = parse_shard(args.shard) if args.shard else Shard(ranks.rank, ranks.world_size)
    try:
        dataset = generate_multiview(args.conditions, args.out, settings, store.resolve, ConsoleProgress(), ranks.device, shard)
        barrier(ranks)
        if ranks.enabled and ranks.is_main:
            dataset = write_manifest(args.out)
    finally:
        cleanup(ranks)
    if dataset is not None:
        print(f"wrote {len(dataset.items)} images and {args.out / 'dataset.json'}")
    elif not ranks.enabled:
        print(f"shard {shard.index}/{shard.count} done; run 'avatar-foundry multiview-merge {args.out} OTHER_SHARD_FOLDERS...' once all finished")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from blender_addon.formats.files import atomic_write

    from ..multiview.generation import GENERATION_RECORD, check_same_run, write_manifest

    for shard in args.shards:
        if not (shard / GENERATION_RECORD).is_file():
            raise FormatError("shards", f"{shard} holds no {GENERATION_RECORD}", "point at output folders of 'avatar-foundry multiview'")
        if (args.out / GENERATION_RECORD).is_file():
            check_same_run(args.out, json.loads((shard / GENERATION_RECORD).read_text(encoding="utf-8")))
        else:
            atomic_write(args.out / GENERATION_RECORD, lambda temp, source=shard: shutil.copyfile(source / GENERATION_RECORD, temp))
        for image in sorted((shard / "images").glob("*.png")):
            target = args.out / "images" / image.name
            if not target.exists():
                atomic_write(target, lambda temp, source=image: shutil.copyfile(source, temp))
    dataset = write_manifest(args.out)
    print(f"merged {len(dataset.items)} images into {args.out / 'dataset.json'}")
    return 0
