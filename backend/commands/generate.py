"""``avatar-foundry generate --checkpoint RUN --seed S [--w FILE] --out DIR``: previews, avatar.glb, avatar.json."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate an avatar (preview PNGs, textured avatar.glb, avatar.json) from a trained generator")
    parser.add_argument("--checkpoint", type=Path, required=True, help="run folder of 'train eg3d' (config.json + model.safetensors)")
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


def style_request(args: argparse.Namespace):
    from backend.avatars import StyleRequest

    return StyleRequest(seed=args.seed, truncation_psi=args.truncation_psi, w_file=str(args.w) if args.w else None)


def run(args: argparse.Namespace) -> int:
    from backend.avatars import AvatarSettings, generate_avatar
    from backend.device import pick_device
    from backend.geometry.mesh_extraction import MeshSettings
    from backend.geometry.texture_baking import TextureSettings
    from backend.models.eg3d.generator import load_generator
    from backend.progress import ConsoleProgress

    generator = load_generator(args.checkpoint, pick_device(args.device))
    settings = AvatarSettings(
        style=style_request(args),
        mesh=MeshSettings(grid_resolution=args.mesh_resolution, level=args.mesh_level, max_faces=args.max_faces or None),
        texture=TextureSettings(size=args.texture_size),
        export_mesh=not args.no_mesh,
    )
    document = generate_avatar(generator, settings, args.out, checkpoint=str(args.checkpoint.resolve()), progress=ConsoleProgress())
    mesh = document["mesh"]
    summary = f", avatar.glb with {mesh['faces']} faces" if mesh else ""
    print(f"wrote {len(document['previews'])} previews{summary} and avatar.json to {args.out}")
    return 0
