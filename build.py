#!/usr/bin/env python3
"""Avatar Foundry's one entry point for developers: set up, test, package, demo, benchmark.

Standard library only, so that it runs on a fresh machine before anything is installed.

    python build.py setup    create .venv and install everything (idempotent)
    python build.py test     set up if needed, then run the test suite
    python build.py addon    write dist/avatar_foundry-<version>.zip (a Blender extension)
    python build.py demo     the main job, end to end, on tiny local models
    python build.py bench    run the benchmarks, write JSON with the device name
                             (bench gpu --out DIR: everything issue 22 measures on a GPU in one run;
                             --tiny runs it on a CPU at tiny sizes)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".avatar-foundry-setup"
ADDON_SOURCE = ROOT / "blender_addon"
DIST = ROOT / "dist"
TORCH_REQUIREMENT = "torch==2.13.0"  # the CPU build that lies on this machine's disk
NO_DEPS_REQUIREMENTS = ("open_clip_torch==3.3.0", "controlnet_aux==0.0.10")
"""Installed without their dependencies (torchvision and timm do not fit the CPU torch and break diffusers'
imports), for files they ship: open_clip's CLIP vocabulary, which the backend reads, and controlnet_aux's
OpenPose drawing code, which the pose-convention test compares against. Neither package is imported whole."""
PYTEST_NO_TESTS_COLLECTED = 5
PASSTHROUGH_COMMANDS = ("test", "demo", "bench")


def say(message: str) -> None:
    """build.py's own messages go to stderr: stdout is what the tools print (bench: plain JSON)."""
    print(f"[build] {message}", file=sys.stderr, flush=True)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["version"]


def setup_fingerprint() -> str:
    """Changes whenever what `setup` would install changes."""
    digest = hashlib.sha256()
    digest.update((ROOT / "pyproject.toml").read_bytes())
    digest.update(TORCH_REQUIREMENT.encode())
    digest.update(" ".join(NO_DEPS_REQUIREMENTS).encode())
    return digest.hexdigest()


def run(command: list[str | os.PathLike], **kwargs) -> int:
    say("$ " + " ".join(str(part) for part in command))
    return subprocess.call([str(part) for part in command], cwd=ROOT, **kwargs)


def check(command: list[str | os.PathLike], **kwargs) -> None:
    code = run(command, **kwargs)
    if code != 0:
        raise SystemExit(f"[build] command failed with exit code {code}")


def setup(force: bool = False) -> None:
    if sys.version_info[:2] != (3, 11):
        raise SystemExit(
            f"[build] Python 3.11 is required (Blender's bpy module is built for it); "
            f"this is {sys.version.split()[0]}. Run build.py with python3.11."
        )
    fingerprint = setup_fingerprint()
    if not force and STAMP.exists() and STAMP.read_text() == fingerprint and venv_python().exists():
        say(f"environment up to date in {VENV.relative_to(ROOT)}")
        return
    if not venv_python().exists():
        say(f"creating virtual environment {VENV.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [venv_python(), "-m", "pip", "install", "--disable-pip-version-check"]
    say("installing PyTorch (local CPU build when available)")
    check(pip + [TORCH_REQUIREMENT])
    say("installing Avatar Foundry with its development extras (bpy, pytest, ...)")
    check(pip + ["-e", ".[dev]"])
    say("installing the packages used for their files only, without their dependencies: " + ", ".join(NO_DEPS_REQUIREMENTS))
    check(pip + ["--no-deps", *NO_DEPS_REQUIREMENTS])
    STAMP.write_text(fingerprint)
    say("environment ready")


def ensure_setup() -> None:
    if not (STAMP.exists() and STAMP.read_text() == setup_fingerprint()):
        setup()


def in_venv(*arguments: str | os.PathLike, env: dict[str, str] | None = None) -> int:
    ensure_setup()
    merged = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return run([venv_python(), *arguments], env=merged)


def test(pytest_args: list[str]) -> int:
    code = in_venv("-m", "pytest", *pytest_args)
    if code == PYTEST_NO_TESTS_COLLECTED:
        say("pytest collected no tests: that is a failure, not a pass")
        return 1
    return code


def build_addon() -> Path:
    """Zip blender_addon/ as an installable Blender extension (manifest at the zip's root)."""
    version = project_version()
    manifest = (ADDON_SOURCE / "blender_manifest.toml").read_text()
    manifest_version = tomllib.loads(manifest)["version"]
    if manifest_version != version:
        raise SystemExit(
            f"[build] blender_addon/blender_manifest.toml has version {manifest_version} but "
            f"pyproject.toml has {version}: make them equal"
        )
    DIST.mkdir(exist_ok=True)
    target = DIST / f"avatar_foundry-{version}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(ADDON_SOURCE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, path.relative_to(ADDON_SOURCE).as_posix())
    partial.replace(target)
    say(f"wrote {target.relative_to(ROOT)}")
    validate_addon(target)
    return target


VALIDATE_SCRIPT = """
import subprocess, sys
from pathlib import Path
import bpy
validator = Path(bpy.utils.resource_path("LOCAL")) / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
sys.exit(subprocess.call([sys.executable, str(validator), "validate", sys.argv[1]]) if validator.is_file() else 3)
"""


def validate_addon(target: Path) -> None:
    """Blender's own extension validation of the zip, through the bpy module of .venv (when set up)."""
    if not venv_python().exists():
        say("extension validation skipped: no .venv yet (python build.py setup installs Blender's bpy module)")
        return
    code = subprocess.call([venv_python(), "-c", VALIDATE_SCRIPT, target], cwd=ROOT, stdout=subprocess.DEVNULL)
    if code == 3:
        say("extension validation skipped: this bpy module has no extension validator")
    elif code != 0:
        raise SystemExit(f"[build] Blender's extension validation refused {target.name} (run it again without stdout redirection to see why)")
    else:
        say("Blender's extension validation passed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser("setup", help="create .venv and install everything")
    setup_parser.add_argument("--force", action="store_true", help="reinstall even if up to date")
    test_parser = commands.add_parser("test", help="run the test suite (extra arguments go to pytest)")
    test_parser.add_argument("test_args", nargs=argparse.REMAINDER)
    commands.add_parser("addon", help="build the Blender extension zip into dist/")
    demo_parser = commands.add_parser("demo", help="run the main job end to end on tiny local models")
    demo_parser.add_argument("demo_args", nargs=argparse.REMAINDER)
    bench_parser = commands.add_parser("bench", help="run benchmarks and write JSON with the device name")
    bench_parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else argv
    # Everything after `test`, `demo` or `bench` (`test -k name -x`) goes, unparsed and in order, to
    # pytest, the demo or the benchmarks; argparse would take leading options for its own.
    if argv and argv[0] in PASSTHROUGH_COMMANDS and not {"-h", "--help"} & set(argv[1:2]):
        args, extra = parser.parse_args(argv[:1]), argv[1:]
    else:
        args = parser.parse_args(argv)
        extra = getattr(args, f"{args.command}_args", [])

    if args.command == "setup":
        setup(force=args.force)
        return 0
    if args.command == "test":
        return test(extra)
    if args.command == "addon":
        build_addon()
        return 0
    if args.command == "demo":
        return in_venv("-m", "backend.cli", "demo", *extra)
    if args.command == "bench":
        return in_venv(ROOT / "benchmarks" / "run.py", *extra)
    return 2


if __name__ == "__main__":
    sys.exit(main())
