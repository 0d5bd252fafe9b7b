"""The ``avatar-foundry`` command: every backend function as a subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys

from blender_addon.formats.errors import FormatError

from . import __version__
from .errors import AvatarFoundryError, Cancelled

COMMAND_MODULES: tuple[str, ...] = (
    "backend.commands.serve",
    "backend.commands.doctor",
    "backend.commands.jobs",
    "backend.commands.train",
    "backend.commands.generate",
    "backend.commands.render_conditions",
    "backend.commands.models",
    "backend.commands.make_tiny_models",
    "backend.commands.multiview",
    "backend.commands.animate",
    "backend.commands.evaluate",
    "backend.commands.import_capture",
    "backend.commands.demo",
    "backend.commands.fit",
    "backend.commands.export_heads",
    "backend.commands.gan_dataset",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatar-foundry",
        description="Generate stylized 3D head avatars and neural renders of rigged heads, locally.",
    )
    parser.add_argument("--version", action="version", version=f"avatar-foundry {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ncancelled (Ctrl-C); finished results are kept and the run can be resumed", file=sys.stderr)
        return 130
    except AvatarFoundryError as error:
        print(f"error [{error.code}]: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file the command reads or writes (a download folder that is not writable...)
        where = f" {error.filename}" if error.filename else ""
        print(f"error:{where}: {error.strerror or error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
