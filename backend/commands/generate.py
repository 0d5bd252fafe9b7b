"""``avatar-foundry generate [--checkpoint RUN] --seed S [--w FILE] --out DIR``: previews, avatar.glb, avatar.json.

Without ``--checkpoint`` the embedded default generator (``backend/default_models``) is used, and the
output says so."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate an avatar (preview PNGs, textured avatar.glb, avatar.json) from a trained generator")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="run folder of 'train eg3d' (config.json + model.safetensors); default: the embedded default generator")
    parser.add_argument("--out", type=Path, required=True, help="folder for previews/, avatar.glb and avatar.json")
    add_style_arguments(parser)
    parser.add_argument("--mesh-resolution", type=int, default=256, help="density grid size per axis (default 256)")
    parser.add_argument("--mesh-level", type=float, default=10.0, help="density iso-level of the surface (raw sigma; default 10 as EG3D)")
    parser.add_argument("--max-faces", type=int, default=60000, help="decimate to at most this many faces (0: keep all)")
    parser.add_argument("--texture-size", type=int, default=1024, help="baked texture size in pixels (default 1024)")
    parser.add_argument("--no-mesh", action="store_true", help="only write previews and avatar.json")
    parser.add_argument("--device", default=None, help="torch device (default: the best available)")
    parser.set_defaults(func=run)


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the avatar's style code comes from (see backend.avatars.style_code)."""
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent z (default 0)")
    parser.add_argument("--truncation-psi", type=float, default=0.7, help="pull w towards the average (1: none; default 0.7)")
    parser.add_argument("--w", type=Path, default=None, help="use this style code instead of the seed: an avatar.json or a .npy of w")
    parser.add_argument("--style-prior", type=Path, default=None, help="image-guided: run folder of 'train style-prior'; with --image")
    parser.add_argument("--image", type=Path, default=None, help="image-guided: reference image (PNG/JPEG) the avatar should resemble; --seed varies it")
    parser.add_argument("--guidance-scale", type=float, default=1.5, help="image-guided: how closely to follow the image (0: ignore it; default 1.5)")
    parser.add_argument("--prior-steps", type=int, default=25, help="image-guided: DDIM steps of the style prior (default 25)")


def style_request(args: argparse.Namespace):
    from backend.avatars import StyleRequest

    return StyleRequest(seed=args.seed, truncation_psi=args.truncation_psi, w_file=str(args.w) if args.w else None)


def image_guided_style(args: argparse.Namespace, generator):
    """The style prior's w for --image (None without --style-prior); the w replaces the mapping network."""
    from backend.errors import InvalidInput
    from backend.models.style_prior.image_guidance import ImageGuidance, guided_style_for_generator

    if args.style_prior is None and args.image is None:
        return None
    if args.style_prior is None or args.image is None:
        raise InvalidInput("image-guided generation needs both --style-prior and --image", "pass both, or neither for seed-based generation",
                           field="style_prior" if args.style_prior is None else "image")
    guidance = ImageGuidance(str(args.style_prior.resolve()), str(args.image), args.prior_steps, args.guidance_scale, args.seed)
    return guided_style_for_generator(generator, guidance, args.style_prior, args.image)


def run(args: argparse.Namespace) -> int:
    from backend.avatars import AvatarSettings, StyleRequest, generate_avatar
    from backend.default_models import DEFAULT_GENERATOR_NOTICE, default_generator
    from backend.device import pick_device
    from backend.geometry.mesh_extraction import MeshSettings
    from backend.geometry.texture_baking import TextureSettings
    from backend.models.eg3d.generator import load_generator
    from backend.models.style_prior.image_guidance import write_record
    from backend.progress import ConsoleProgress
    from blender_addon.formats.notices import write_notices

    checkpoint = args.checkpoint or default_generator()
    if args.checkpoint is None:
        print(DEFAULT_GENERATOR_NOTICE)
    generator = load_generator(checkpoint, pick_device(args.device))
    guided = image_guided_style(args, generator)
    settings = AvatarSettings(
        style=StyleRequest(w=guided.w.tolist(), truncation_psi=1.0) if guided else style_request(args),
        mesh=MeshSettings(grid_resolution=args.mesh_resolution, level=args.mesh_level, max_faces=args.max_faces or None),
        texture=TextureSettings(size=args.texture_size),
        export_mesh=not args.no_mesh,
    )
    document = generate_avatar(generator, settings, args.out, checkpoint=str(checkpoint.resolve()), progress=ConsoleProgress(),
                               image_guidance=guided.record if guided else None)
    if guided:
        write_record(args.out, guided)
    if args.checkpoint is None:
        write_notices(args.out, [DEFAULT_GENERATOR_NOTICE])
    mesh = document["mesh"]
    summary = f", avatar.glb with {mesh['faces']} faces" if mesh else ""
    print(f"wrote {len(document['previews'])} previews{summary} and avatar.json to {args.out}")
    return 0
