"""Which Python runs the backend: the one Install Backend creates, one the artist picks, or one
that builds the environment; each checked (exists, runs, right version, has the backend) with a
one-line answer naming the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SUPPORTED_VERSIONS = ((3, 11), (3, 12), (3, 13))
PROBE_TIMEOUT_SECONDS = 20.0
ENVIRONMENT_FOLDER_NAME = "backend-env"
"""The environment Install Backend creates inside the backend data folder."""
PROBE = "import sys, importlib.util as u; print('%d.%d' % sys.version_info[:2]); print(u.find_spec('backend') is not None)"
INSTALL_HINT = "press Install Backend in the add-on's preferences, or pick a Python that has the backend"


@dataclass(frozen=True)
class PythonProbe:
    version: tuple[int, int]
    has_backend: bool


class PythonProblem(Exception):
    """A Python that cannot run the backend; ``str()`` is the one-line message with the fix."""


def environment_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir).expanduser() / ENVIRONMENT_FOLDER_NAME


def environment_python(env_dir: str | os.PathLike) -> Path:
    return Path(env_dir) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def probe(python: str | os.PathLike, source_dir: str | os.PathLike | None = None) -> PythonProbe:
    """Run ``python`` once: its version and whether ``backend`` is importable there (from
    ``source_dir`` too, when given; else from its own folder, not from wherever Blender was
    started, as the backend itself runs). Raises PythonProblem naming what is wrong."""
    path = Path(python).expanduser() if str(python).strip() else None
    if path is None:
        raise PythonProblem(f"Backend Python is not set: {INSTALL_HINT}")
    if not path.exists():
        raise PythonProblem(f"Backend Python {path} does not exist: {INSTALL_HINT}")
    if path.is_dir():
        raise PythonProblem(f"Backend Python {path} is a folder: pick the python executable inside it (bin/python)")
    try:
        result = subprocess.run([str(path), "-c", PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS,
                                cwd=str(source_dir) if source_dir else str(path.parent), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PythonProblem(f"Backend Python {path} did not answer within {PROBE_TIMEOUT_SECONDS:.0f} s: pick another Python") from None
    except OSError as error:
        raise PythonProblem(f"Backend Python {path} cannot run ({error.strerror}): pick a Python executable") from None
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) < 2:
        raise PythonProblem(f"Backend Python {path} is not a working Python (exit code {result.returncode}): pick another")
    major, minor = (int(part) for part in lines[-2].split("."))
    return PythonProbe((major, minor), lines[-1] == "True")


def backend_python_problem(python: str | os.PathLike, source_dir: str | os.PathLike | None = None) -> str | None:
    """None when ``python`` can run the backend, else the one-line reason and fix."""
    try:
        found = probe(python, source_dir)
    except PythonProblem as problem:
        return str(problem)
    if found.version not in SUPPORTED_VERSIONS:
        return f"Backend Python {python} is Python {_dotted(found.version)}; the backend needs {_supported()}: {INSTALL_HINT}"
    if not found.has_backend:
        return f"Backend Python {python} has no Avatar Foundry backend: {INSTALL_HINT}"
    return None


def default_backend_python(data_dir: str | os.PathLike, blender_python: str) -> str:
    """The Python Start uses when the preference is empty: the installed environment's, else
    Blender's own Python only when the backend is installed there (a developer's venv that runs
    Blender as a module), else '' (Start then says to install the backend)."""
    installed = environment_python(environment_dir(data_dir))
    if installed.is_file():
        return str(installed)
    try:
        if probe(blender_python).has_backend:
            return blender_python
    except PythonProblem:
        pass
    return ""


def builder_python(chosen: str, blender_python: str, which: Callable[[str], str | None] = shutil.which) -> str:
    """The Python that creates the backend's environment: the artist's choice, else Blender's own
    Python when its version is supported, else the newest python3.11-3.13 on PATH."""
    if chosen.strip():
        found = probe(chosen)
        if found.version not in SUPPORTED_VERSIONS:
            raise PythonProblem(f"{chosen} is Python {_dotted(found.version)}; the backend needs {_supported()}: pick another")
        return chosen
    candidates = [blender_python] + [path for version in reversed(SUPPORTED_VERSIONS) if (path := which(f"python{_dotted(version)}"))]
    for candidate in candidates:
        try:
            if probe(candidate).version in SUPPORTED_VERSIONS:
                return candidate
        except PythonProblem:
            continue
    raise PythonProblem(f"no {_supported()} found (Blender's own Python is not one, and none is on PATH): "
                        "install one from python.org and pick it as Python for the install")


def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _supported() -> str:
    return f"Python {_dotted(SUPPORTED_VERSIONS[0])}-{_dotted(SUPPORTED_VERSIONS[-1])}"
