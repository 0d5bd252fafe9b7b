"""``avatar-foundry fit nphm --model NPHM --targets FRAMES --out FIT``: track a neural head to geometry."""

from __future__ import annotations

import argparse
from pathlib import Path

from .models import add_store_argument, store_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fit", help="fit a parametric head model to target geometry")
    models = parser.add_subparsers(dest="fit_model", required=True, metavar="MODEL")
    nphm = models.add_parser("nphm", help="fit NPHM: identity once, expression + similarity per frame (rerun to resume)")
    nphm.add_argument("--model", required=True, help="an NPHM checkpoint folder, or a model-store name of role nphm")
    nphm.add_argument("--targets", type=Path, required=True,
                      help="per-frame meshes/point clouds (a rig's evaluated mesh per frame), or a capture folder (capture.json + depth)")
    nphm.add_argument("--out", type=Path, required=True, help="folder for fit.json (codes, poses, errors per frame) and codes.safetensors")
    nphm.add_argument("--identity-frames", type=int, default=1, help="frames the identity is fitted on, jointly")
    nphm.add_argument("--identity-steps", type=int, default=400)
    nphm.add_argument("--frame-steps", type=int, default=100, help="steps per later frame (warm-started from the previous one)")
    nphm.add_argument("--points-per-step", type=int, default=1000)
    nphm.add_argument("--mm-per-unit", type=float, default=1000.0, help="millimetres per target unit (1000: metres, Blender's default)")
    nphm.add_argument("--proxy-resolution", type=int, default=0,
                      help="also write per-frame proxy meshes (marching cubes at this grid resolution, e.g. 256) to OUT/proxy/")
    nphm.add_argument("--seed", type=int, default=0)
    nphm.add_argument("--device", default=None, help="torch device (default: the best available)")
    add_store_argument(nphm)
    nphm.set_defaults(func=run)


def resolve_model(args: argparse.Namespace) -> Path:
    path = Path(args.model).expanduser()
    if path.is_dir():
        return path
    return store_from_args(args).resolve(args.model, role="nphm").path


def run(args: argparse.Namespace) -> int:
    from backend.device import pick_device
    from backend.models.nphm.fitting import FitSettings
    from backend.models.nphm.tracking_run import fit_nphm
    from backend.progress import ConsoleProgress

    settings = FitSettings(identity_frames=args.identity_frames, identity_steps=args.identity_steps, frame_steps=args.frame_steps,
                           points_per_step=args.points_per_step, mm_per_unit=args.mm_per_unit, seed=args.seed)
    model_dir = resolve_model(args)
    result = fit_nphm(model_dir, args.targets, args.out, settings, ConsoleProgress(), device=pick_device(args.device))
    if args.proxy_resolution:
        from backend.models.nphm.model import load_head
        from backend.models.nphm.proxy_export import export_proxies

        export_proxies(load_head(model_dir, pick_device(args.device)), result, args.out / "proxy", args.proxy_resolution, ConsoleProgress())
    for frame in result.frames:
        print(f"{frame.name}: {frame.error_mm:.3f} mm ({frame.error_fraction * 100:.2f}% of head height), {frame.seconds:.2f} s")
    print(f"fitted {len(result.frames)} frames; codes and poses in {args.out}")
    return 0
