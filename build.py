#!/usr/bin/env python3
"""Avatar Foundry's one entry point for developers: set up, test, package, demo, benchmark.

Standard library only, so that it runs on a fresh machine before anything is installed.

    python build.py setup    create .venv and install everything (idempotent)
    python build.py test     set up if needed, then run the test suite, and its Blender-facing tests
                             under every other supported Blender (--blender 4.2: only that one)
    python build.py addon    write dist/avatar_foundry-<version>.zip (a Blender extension, the backend wheel inside)
    python build.py demo     the main job, end to end, on tiny local models
    python build.py train-defaults   train the models the package embeds (backend/default_models) on the
                             project's own Cycles renders; resumable (--quick: every step tiny; --minutes M)
    python build.py bench    run the benchmarks, write JSON with the device name
                             (bench gpu --out DIR: everything issue 22 measures on a GPU in one run;
                             --tiny runs it on a CPU at tiny sizes)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".avatar-foundry-setup"
ADDON_SOURCE = ROOT / "blender_addon"
DIST = ROOT / "dist"
ADDON_WHEEL_FOLDER = "backend_wheel"
"""Where the backend wheel lies inside the extension zip (Install Backend installs it from there;
blender_addon/core/backend_install.py reads the same name). Not a manifest `wheels` entry: those
are installed into Blender's own Python."""
TORCH_REQUIREMENT = "torch==2.13.0"  # the CPU build that lies on this machine's disk
NO_DEPS_REQUIREMENTS = ("open_clip_torch==3.3.0", "controlnet_aux==0.0.10")
"""Installed without their dependencies (torchvision and timm do not fit the CPU torch and break diffusers'
imports), for files they ship: open_clip's CLIP vocabulary, which the backend reads, and controlnet_aux's
OpenPose drawing code, which the pose-convention test compares against. Neither package is imported whole."""
PYTEST_NO_TESTS_COLLECTED = 5
MAIN_BLENDER = "5.0"
"""The Blender of .venv (the bpy pin of pyproject's dev extra), where the whole suite runs."""


@dataclass(frozen=True)
class BlenderBuild:
    """A supported Blender the Blender-facing tests also run under, from a venv of its own."""

    version: str
    requirement: str
    python: str
    """The Python its bpy wheel is built for (Blender's own bundled Python)."""

    @property
    def venv(self) -> Path:
        return ROOT / f".venv-blender-{self.version}"


BLENDER_MATRIX = (
    BlenderBuild("4.2", "bpy==4.2.23", "3.11"),  # LTS
    BlenderBuild("4.5", "bpy==4.5.15", "3.11"),  # LTS
    BlenderBuild("5.3", "bpy==5.3.0", "3.13"),  # the newest 5.x whose bpy the registry serves
)
MATRIX_TEST_REQUIREMENTS = ("pytest>=8,<10", "httpx>=0.27,<1", "pillow>=10,<14")
"""All a matrix venv holds besides bpy: the tools the Blender-facing tests import. Never torch: an
artist's Blender has none, so those tests run the backend from .venv as a subprocess."""
PASSTHROUGH_COMMANDS = ("test", "demo", "bench", "train-defaults")


def say(message: str) -> None:
    """build.py's own messages go to stderr: stdout is what the tools print (bench: plain JSON)."""
    print(f"[build] {message}", file=sys.stderr, flush=True)


def venv_python_of(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def venv_python() -> Path:
    return venv_python_of(VENV)


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


def find_python(version: str) -> Path:
    """A Python of ``version`` ("3.13"): this one, ``python3.13`` on PATH, or one pyenv installed."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return Path(sys.executable)
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted((Path.home() / ".pyenv" / "versions").glob(f"{version}*/bin/python{version}"), reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run([str(candidate), "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return Path(candidate)
    raise SystemExit(f"[build] no Python {version} found (python{version} on PATH, ~/.pyenv/versions/{version}*): "
                     f"install it, or leave out the Blenders that need it with --blender "
                     f"{','.join(build.version for build in BLENDER_MATRIX if build.python != version) or MAIN_BLENDER}")


def setup_blender(build: BlenderBuild) -> None:
    """The venv of one Blender of the matrix: its bpy and the test tools, nothing else (idempotent)."""
    stamp = build.venv / ".avatar-foundry-setup"
    fingerprint = " ".join((build.python, build.requirement, *MATRIX_TEST_REQUIREMENTS))
    python = venv_python_of(build.venv)
    if stamp.exists() and stamp.read_text() == fingerprint and python.exists():
        return
    if not python.exists():
        say(f"creating {build.venv.name} for Blender {build.version} (Python {build.python})")
        check([find_python(build.python), "-m", "venv", build.venv])
    check([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", build.requirement, *MATRIX_TEST_REQUIREMENTS])
    stamp.write_text(fingerprint)


def split_blender_option(arguments: list[str]) -> tuple[list[str] | None, list[str]]:
    """``--blender 4.2,5.3`` (or ``--blender=...``) taken out of the test arguments: the versions, or None."""
    rest, versions = [], None
    items = iter(arguments)
    for item in items:
        if item == "--blender" or item.startswith("--blender="):
            value = item.partition("=")[2] or next(items, "")
            versions = [version.strip() for version in value.split(",") if version.strip()]
        else:
            rest.append(item)
    known = sorted([MAIN_BLENDER, *(build.version for build in BLENDER_MATRIX)], key=lambda version: tuple(map(int, version.split("."))))
    if versions is not None and (not versions or set(versions) - set(known)):
        raise SystemExit(f"[build] --blender takes versions from {', '.join(known)} (comma-separated), not {','.join(versions) or 'nothing'}")
    return versions, rest


def blender_facing(pytest_args: list[str]) -> list[str]:
    """pytest arguments that keep the Blender-facing tests (marker ``blender``) of a selection: a ``-m``
    the caller gave is combined with it, not replaced."""
    rest, expressions = [], []
    items = iter(pytest_args)
    for item in items:
        if item == "-m":
            expressions.append(next(items, ""))
        elif item.startswith("-m") and not item.startswith("-m="):
            expressions.append(item[2:])
        else:
            rest.append(item)
    return ["-m", " and ".join(["blender", *(f"({expression})" for expression in expressions)]), *rest]


def run_pytest(python: Path, pytest_args: list[str], env: dict[str, str] | None = None, may_select_none: bool = False) -> int:
    code = run([python, "-m", "pytest", *pytest_args], env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    if code == PYTEST_NO_TESTS_COLLECTED:
        if may_select_none:
            say("none of the selected tests faces Blender")
            return 0
        say("pytest collected no tests: that is a failure, not a pass")
        return 1
    return code


def blender_tests(version: str, pytest_args: list[str], may_select_none: bool = False) -> int:
    """The Blender-facing tests under one Blender, the backend running from .venv."""
    say(f"Blender {version}: the Blender-facing tests")
    if version == MAIN_BLENDER:
        return run_pytest(venv_python(), blender_facing(pytest_args), may_select_none=may_select_none)
    build = next(build for build in BLENDER_MATRIX if build.version == version)
    setup_blender(build)
    env = {"AVATAR_FOUNDRY_BLENDER_MATRIX": version, "AVATAR_FOUNDRY_BACKEND_PYTHON": str(venv_python())}
    return run_pytest(venv_python_of(build.venv), blender_facing(pytest_args), env, may_select_none)


def test(arguments: list[str]) -> int:
    """The whole suite in .venv, then the Blender-facing tests under every other Blender of the matrix
    (or, with ``--blender``, only the Blender-facing tests under the versions named)."""
    versions, pytest_args = split_blender_option(arguments)
    ensure_setup()
    if versions is None:
        # A selection (``test tests/test_cameras.py``) may hold no Blender-facing test: then the matrix has nothing to run.
        runs = [(f"Blender {MAIN_BLENDER}, whole suite", lambda: run_pytest(venv_python(), pytest_args))]
        runs += [(f"Blender {build.version}, Blender-facing tests",
                  lambda version=build.version: blender_tests(version, pytest_args, may_select_none=bool(pytest_args)))
                 for build in BLENDER_MATRIX]
    else:
        runs = [(f"Blender {version}, Blender-facing tests", lambda version=version: blender_tests(version, pytest_args))
                for version in versions]
    results = []
    for name, run_tests in runs:
        started = time.monotonic()
        code = run_tests()
        results.append((name, code, time.monotonic() - started))
    for name, code, seconds in results:
        say(f"{name}: {'passed' if code == 0 else f'FAILED (exit code {code})'} in {seconds:.0f} s")
    return next((code for _, code, _ in results if code != 0), 0)


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
    with tempfile.TemporaryDirectory(prefix="avatar-foundry-wheel-") as scratch:
        wheel = build_backend_wheel(Path(scratch))
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(ADDON_SOURCE.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    archive.write(path, path.relative_to(ADDON_SOURCE).as_posix())
            archive.write(wheel, f"{ADDON_WHEEL_FOLDER}/{wheel.name}")
    partial.replace(target)
    say(f"wrote {target.relative_to(ROOT)}")
    validate_addon(target)
    return target


def build_backend_wheel(scratch: Path) -> Path:
    """The backend as a wheel (backend, training and the add-on's shared formats; runtime
    dependencies only in its metadata), built by pip from a copy of the sources so that no stale
    `build/` folder of the checkout can leak into it."""
    source = scratch / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "dist", "build", "*.egg-info", "__pycache__", "*.pyc", "tests", "benchmarks", ".whl", ".gl",
        "avatar-foundry-demo", ".pytest_cache"))
    out = scratch / "wheel"
    check([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check", "-w", out, source])
    (wheel,) = out.glob("avatar_foundry-*.whl")
    return wheel


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
    test_parser = commands.add_parser("test", help="run the test suite, then its Blender-facing tests under every other supported "
                                      "Blender (--blender 4.2,5.3: only those; other arguments go to pytest)")
    test_parser.add_argument("test_args", nargs=argparse.REMAINDER)
    commands.add_parser("addon", help="build the Blender extension zip into dist/")
    demo_parser = commands.add_parser("demo", help="run the main job end to end on tiny local models")
    demo_parser.add_argument("demo_args", nargs=argparse.REMAINDER)
    bench_parser = commands.add_parser("bench", help="run benchmarks and write JSON with the device name")
    bench_parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    defaults_parser = commands.add_parser("train-defaults", help="train the embedded default models (python -m training.defaults --help)")
    defaults_parser.add_argument("defaults_args", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else argv
    # Everything after `test`, `demo` or `bench` (`test -k name -x`) goes, unparsed and in order, to
    # pytest, the demo or the benchmarks; argparse would take leading options for its own.
    if argv and argv[0] in PASSTHROUGH_COMMANDS and not {"-h", "--help"} & set(argv[1:2]):
        args, extra = parser.parse_args(argv[:1]), argv[1:]
    else:
        args = parser.parse_args(argv)
        extra = getattr(args, f"{args.command.split('-')[-1]}_args", [])

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
    if args.command == "train-defaults":
        return in_venv("-m", "training.defaults", *extra, env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return 2


if __name__ == "__main__":
    sys.exit(main())
