"""After the demo: open its ``demo.blend`` in the artist's Blender, with a window, where there is one.

The demo itself runs headless (the ``bpy`` module); looking at the result needs the Blender application.
It is found as ``$BLENDER``, ``blender`` on the PATH, or where the official installers put it, and is
started only where it can show a window (macOS, Windows, or a Linux session with a display).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

INSTALLED_LOCATIONS = {
    "darwin": ["/Applications/Blender.app/Contents/MacOS/Blender"],
    "win32": [r"C:\Program Files\Blender Foundation\Blender *\blender.exe"],
}
"""Where the official installers put Blender (newest version last once sorted)."""


def find_blender(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> Path | None:
    """The Blender application to open files with, or None when this machine has none that can be found."""
    if env.get("BLENDER"):
        chosen = Path(env["BLENDER"])
        return chosen if chosen.is_file() else None
    on_path = shutil.which("blender", path=env.get("PATH"))
    if on_path:
        return Path(on_path)
    installed = [match for pattern in INSTALLED_LOCATIONS.get(platform, []) for match in sorted(glob.glob(pattern))]
    return Path(installed[-1]) if installed else None


def has_display(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    return platform in ("darwin", "win32") or bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def open_in_blender(blend: Path, env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> str:
    """Start Blender on ``blend`` in the background (it outlives the demo) where it can show a window; returns
    what happened, for the demo to print."""
    if not has_display(env, platform):
        return f"no display here to open a window on: open {blend} in Blender on your desktop"
    blender = find_blender(env, platform)
    if blender is None:
        return f"no Blender application found (set BLENDER=/path/to/blender to have the demo open it): open {blend} in Blender"
    subprocess.Popen([str(blender), str(blend)], env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    return f"opened {blend} in {blender}"
