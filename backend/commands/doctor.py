"""``avatar-foundry doctor``: what this installation has and whether each part works."""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from blender_addon.formats import protocol

from .. import __version__

BPY_CHECK_TIMEOUT_SECONDS = 180
CORE_PACKAGES = ("torch", "diffusers", "transformers", "safetensors", "fastapi", "uvicorn", "numpy", "pillow")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="print versions, device, data dir, models, and whether bpy works")
    parser.add_argument("--data-dir", type=Path, default=None, help=f"the data dir to inspect (default {protocol.default_data_dir()})")
    parser.add_argument("--skip-bpy", action="store_true", help="do not start Blender's Python module (it takes a few seconds)")
    parser.set_defaults(func=doctor)


def doctor(args: argparse.Namespace) -> int:
    problems = 0
    print(f"avatar-foundry {__version__} (protocol {protocol.PROTOCOL_VERSION})")
    print(f"python         {platform.python_version()} ({sys.executable})")
    for package in runtime_packages():
        print(f"{package:<14} {_version(package) or 'NOT INSTALLED'}")
        problems += _version(package) is None
    problems += _report_device()
    problems += _report_job_kinds()
    _report_data_dir(args.data_dir)
    problems += _report_models(args.data_dir)
    if not args.skip_bpy:
        _report_bpy()
    print("ok" if problems == 0 else f"{problems} problem(s) found")
    return 0 if problems == 0 else 1


def runtime_packages() -> list[str]:
    """The distributions the backend needs at run time: the installed package's own requirements
    for this Python (no developer extras), or the main ones when it runs from a source folder that
    was never installed (or without ``packaging``, which transformers brings)."""
    try:
        from packaging.requirements import Requirement

        requirements = [Requirement(text) for text in metadata.requires("avatar-foundry") or []]
    except (ImportError, metadata.PackageNotFoundError):
        return list(CORE_PACKAGES)
    wanted = [requirement.name for requirement in requirements
              if requirement.marker is None or requirement.marker.evaluate({"extra": ""})]
    return list(dict.fromkeys(wanted))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _report_device() -> int:
    try:
        from ..device import describe, pick_device

        info = describe(pick_device())
    except Exception as error:  # doctor reports every failure instead of stopping at it
        print(f"device         FAILED: {error}")
        return 1
    free = info["free_memory_bytes"]
    print(f"device         {info['device']} ({info['device_name']})" + (f", {free / 2**30:.1f} GiB free" if free is not None else ""))
    return 0


def _report_job_kinds() -> int:
    try:
        from ..jobs.registry import all_kinds

        names = [kind.name for kind in all_kinds()]
    except Exception as error:  # a job kind that fails to import stops the server: say which
        print(f"job kinds      FAILED to load: {type(error).__name__}: {error}")
        return 1
    print(f"job kinds      {', '.join(names)}")
    return 0


def _report_data_dir(data_dir: Path | None) -> None:
    from ..data_dir import DataDir

    folder = DataDir.at(data_dir)
    print(f"data dir       {folder.root}" + ("" if folder.root.is_dir() else " (not created yet; 'serve' creates it)"))
    print(f"token          {'present' if folder.read_token() else 'none yet'} ({folder.token_path})")
    if folder.server_info_path.is_file():
        print(f"server         announced in {folder.server_info_path}: {folder.server_info_path.read_text(encoding='utf-8').strip()}")


def _report_models(data_dir: Path | None) -> int:
    from ..data_dir import DataDir
    from ..errors import AvatarFoundryError
    from ..models.store import ModelStore, validate_entry

    store = ModelStore(DataDir.at(data_dir).models_dir)
    try:
        entries = store.list()
    except AvatarFoundryError as error:
        print(f"models         FAILED: {error}")
        return 1
    print(f"models         {len(entries)} in {store.root}")
    problems = 0
    for entry in entries:
        try:
            validate_entry(entry)
            status = "ok"
        except AvatarFoundryError as error:
            status, problems = f"BROKEN: {error.message}", problems + 1
        print(f"  {entry.name:<20} {entry.role:<18} {entry.format:<12} {entry.path}  {status}")
    return problems


def _report_bpy() -> None:
    """Import bpy in a child process: it is slow to import and must not share this process."""
    try:
        result = subprocess.run([sys.executable, "-c", "import bpy; print(bpy.app.version_string)"],
                                capture_output=True, text=True, timeout=BPY_CHECK_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"bpy            did not import within {BPY_CHECK_TIMEOUT_SECONDS} s")
        return
    if result.returncode == 0:
        print(f"bpy            works (Blender {result.stdout.strip().splitlines()[-1]})")
    else:
        last_line = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        print(f"bpy            not usable: {last_line} (only needed for tests and headless rendering; "
              "install with pip install 'avatar-foundry[blender]')")
