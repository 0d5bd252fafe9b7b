"""``avatar-foundry render-conditions``: render a condition bundle headless, through the bpy module,
with exactly the add-on's code (demo rig or a rig in a .blend file, or a fitted NPHM proxy sequence
imported into that scene, rendered in the rig's place with the scene's character as the target)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blender_addon.formats.errors import FormatError


def _frame_range(text: str) -> list[int]:
    """'12' or '1-24' -> the frames."""
    first, _, last = text.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame or a range like 1-24") from None
    if end < start:
        raise argparse.ArgumentTypeError(f"frame range {text!r} ends before it starts")
    return list(range(start, end + 1))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render-conditions", help="render pose/depth/normal/canonical/mask passes of a rig (headless Blender)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo-rig", action="store_true", help="build the procedural demo head")
    source.add_argument("--blend", type=Path, help="a .blend file holding the rig (use with --rig)")
    parser.add_argument("--rig", help="the rig in the .blend file: its armature, or a head mesh with shape keys "
                        "(may be left out when the file has only one)")
    parser.add_argument("--seed", type=int, default=0, help="demo head identity/look seed, and the random-expression seed")
    parser.add_argument("--views", type=int, default=8, help="orbit views (default 8)")
    parser.add_argument("--res", type=int, default=256, help="square resolution in pixels (default 256)")
    parser.add_argument("--yaw-range", type=float, nargs=2, default=(-180.0, 180.0), metavar=("MIN", "MAX"))
    parser.add_argument("--pitch-range", type=float, nargs=2, default=(-30.0, 30.0), metavar=("MIN", "MAX"))
    parser.add_argument("--jitter", type=float, default=0.0, help="random angle jitter in degrees")
    parser.add_argument("--frames", type=_frame_range, default=None, help="scene frames, e.g. 1-24 (default: the current one)")
    parser.add_argument("--target-object", help="object or collection rendered into the 'target' pass (deferred dataset)")
    parser.add_argument("--random-expressions", type=int, default=0, help="render N random rig expressions (needs --target-object)")
    parser.add_argument("--target-samples", type=int, default=32, help="Cycles samples of the target pass")
    parser.add_argument("--nphm-proxy", type=Path, help="a proxy/ folder 'fit nphm --proxy-resolution' wrote: render its frames "
                        "(canonical and ambient passes, NPHM codes) instead of the rig; --frames picks some (default: all)")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.set_defaults(func=run)


def _rig_name(given: str | None) -> str:
    """The rig to render: the one named (checked now, so a wrong name lists the file's rigs before
    any rendering), or the file's only rig."""
    from blender_addon.blender.rig import find_rig, rig_candidates

    if given:
        return find_rig(given).name
    candidates = rig_candidates()
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FormatError("--blend", "the file has no rig (no armature with meshes, no mesh with shape keys)",
                          "open the file in Blender and parent the head mesh to its armature, or add shape keys to it")
    raise FormatError("--rig", f"is needed: the file has {len(candidates)} rigs",
                      "name one of them: " + ", ".join(f"--rig {name!r}" for name in candidates))


def open_scene(blend: Path | None, seed: int) -> str | None:
    """Open ``blend``, or start an empty scene with the demo head of identity ``seed`` (whose name is returned)."""
    import bpy

    from blender_addon.blender.demo_head import add_demo_head
    from blender_addon.core.demo_appearance import sample_appearance
    from blender_addon.core.demo_head_shape import sample_identity

    if blend:
        if not blend.is_file():
            raise FormatError("--blend", f"{blend} does not exist")
        bpy.ops.wm.open_mainfile(filepath=str(blend))
        return None
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return add_demo_head(bpy.context, sample_identity(seed), sample_appearance(seed)).name


def open_rig(blend: Path | None, rig: str | None, seed: int) -> str:
    """``open_scene``, then the rig's name: the demo head's, or the file's rig ``rig`` (or its only one)."""
    return open_scene(blend, seed) or _rig_name(rig)


def _import_proxy(folder: Path) -> str:
    """Import the proxy sequence into the open scene; returns its collection's name."""
    import bpy

    from blender_addon.blender.proxy_import import import_proxy_sequence

    if not folder.is_dir():
        raise FormatError("--nphm-proxy", f"{folder} is not a folder", "give the proxy/ folder 'fit nphm --proxy-resolution N' wrote")
    return import_proxy_sequence(folder, bpy.context.scene).name


def run(args: argparse.Namespace) -> int:
    import bpy

    from backend.progress import ConsoleProgress
    from blender_addon.blender.condition_render import NOTICE_PREFIX, BundleRequest, render_bundle
    from blender_addon.core.view_plan import OrbitSettings, plan_orbit_views

    if args.nphm_proxy:
        open_scene(args.blend, args.seed)
        rig_name, proxy = "", _import_proxy(args.nphm_proxy)
    else:
        rig_name, proxy = open_rig(args.blend, args.rig, args.seed), ""
    orbit = OrbitSettings(views=args.views, yaw_min=args.yaw_range[0], yaw_max=args.yaw_range[1],
                          pitch_min=args.pitch_range[0], pitch_max=args.pitch_range[1], jitter_degrees=args.jitter, seed=args.seed)
    if not 8 <= args.res <= 4096:
        raise FormatError("--res", f"must lie in [8, 4096], got {args.res}")
    request = BundleRequest(rig=rig_name, output_dir=args.out, views=plan_orbit_views(orbit, args.res, args.res),
                            width=args.res, height=args.res, frames=args.frames or [], target=args.target_object,
                            random_expressions=args.random_expressions, seed=args.seed, target_samples=args.target_samples, proxy=proxy)
    progress = ConsoleProgress()
    for fraction, stage in render_bundle(request, bpy.context.scene):
        if stage.startswith(NOTICE_PREFIX):
            print(stage, file=sys.stderr)
        else:
            progress.update(fraction, stage)
    print(args.out)
    return 0
