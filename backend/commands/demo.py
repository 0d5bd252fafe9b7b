"""``avatar-foundry demo``: every step an artist takes, end to end, on tiny random models (see backend/demo)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the whole pipeline in headless Blender on tiny local models (a few minutes on a CPU)")
    parser.add_argument("--out", type=Path, default=Path("avatar-foundry-demo"),
                        help="folder for everything the demo makes (default %(default)s; an earlier demo's folder is replaced)")
    parser.add_argument("--addon-zip", type=Path, default=None,
                        help="the add-on extension zip to install (default: built afresh from this checkout)")
    parser.add_argument("--seed", type=int, default=3, help="demo head identity and every sampling seed")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the whole demo may take")
    parser.add_argument("--blender-python", type=Path, default=None,
                        help="the Python of the Blender (bpy module) to run the artist's session in (default: this Python)")
    parser.add_argument("--no-open", action="store_true", help="do not open the result in Blender afterwards (it is opened, with a "
                        "window, where Blender and a display are found)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.open_in_blender import open_in_blender
    from ..demo.pipeline import build_addon_zip, run_demo

    summary = run_demo(args.out, args.addon_zip or build_addon_zip(), seed=args.seed, timeout_s=args.timeout,
                       blender_python=args.blender_python)
    print(f"\nThe demo finished in {summary['seconds']:.0f} s. Open in Blender: {summary['blend']}")
    print(f"  avatars imported: {', '.join(summary['avatars'])}")
    print(f"  avatar mesh:      {summary['avatar_glb']}")
    print(f"  animation:        {len(summary['default_renderer_frames'])} frames through the embedded default renderer in "
          f"{Path(summary['default_renderer_frames'][0]).parent}")
    print(f"  contact sheet:    {summary['contact_sheet']}")
    print("  (tiny random models paint noise; register real Stable Diffusion / ControlNet weights for real avatars: see README)")
    if not args.no_open:
        print(open_in_blender(Path(summary["blend"])))
    return 0
