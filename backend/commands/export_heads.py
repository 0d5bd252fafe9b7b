"""``avatar-foundry export-heads``: a rig's head as meshes for NPHM, headless through the bpy module.

``--random-expressions N`` writes ``OUT/neutral.ply`` + N posed heads with the neutral's vertices (a training
subject for ``train nphm``); ``--frames A-B`` writes the rig's animation frame by frame (targets for ``fit nphm``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from blender_addon.formats.errors import FormatError

from .render_conditions import _frame_range, open_rig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export-heads", help="export a rig's head as meshes: random expressions (NPHM training) or frames (NPHM fitting)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo-rig", action="store_true", help="build the procedural demo head")
    source.add_argument("--blend", type=Path, help="a .blend file holding the rig")
    parser.add_argument("--rig", help="the rig in the .blend file (may be left out when the file has only one)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--random-expressions", type=int, help="the neutral and N random expressions (same vertices: exact correspondences)")
    what.add_argument("--frames", type=_frame_range, help="scene frames, e.g. 1-120: the rig's animation as it plays")
    parser.add_argument("--seed", type=int, default=0, help="demo head identity seed and random-expression seed")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (a subject folder of a train nphm dataset, or fit targets)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backend.progress import ConsoleProgress
    from blender_addon.blender.head_mesh_export import export_frames, export_random_expressions

    rig_name = open_rig(args.blend, args.rig, args.seed)
    if args.random_expressions is not None and args.random_expressions < 1:
        raise FormatError("--random-expressions", f"must be >= 1, got {args.random_expressions}")
    steps = (export_random_expressions(rig_name, args.out, args.random_expressions, args.seed) if args.random_expressions
             else export_frames(rig_name, args.out, args.frames))
    progress = ConsoleProgress()
    for fraction, stage in steps:
        progress.update(fraction, stage)
    print(args.out)
    return 0
