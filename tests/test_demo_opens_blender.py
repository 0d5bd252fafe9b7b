"""After the demo, the artist sees the result in Blender with a window where that can happen, and is told
where the .blend is where it cannot (a server with no display, no Blender application installed)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from backend.demo.open_in_blender import find_blender, open_in_blender


def fake_blender(folder: Path) -> Path:
    """An executable named blender that records the arguments it was started with."""
    script = folder / "blender"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {folder / 'started-with.txt'}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_the_demo_opens_its_blend_file_in_the_blender_on_the_path_when_there_is_a_display(tmp_path):
    fake_blender(tmp_path)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "DISPLAY": ":0"}
    said = open_in_blender(tmp_path / "demo.blend", env, platform="linux")
    assert said.startswith("opened")
    record = tmp_path / "started-with.txt"
    deadline = time.monotonic() + 10
    while not record.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert record.read_text().strip() == str(tmp_path / "demo.blend")


def test_without_a_display_or_a_blender_the_demo_says_where_the_file_is_and_starts_nothing(tmp_path):
    fake_blender(tmp_path)
    headless = open_in_blender(tmp_path / "demo.blend", {"PATH": str(tmp_path)}, platform="linux")
    assert "no display" in headless and str(tmp_path / "demo.blend") in headless
    no_blender = open_in_blender(tmp_path / "demo.blend", {"PATH": str(tmp_path / "empty"), "WAYLAND_DISPLAY": "wayland-0"}, platform="linux")
    assert "BLENDER=" in no_blender and str(tmp_path / "demo.blend") in no_blender
    assert not (tmp_path / "started-with.txt").exists()


def test_blender_named_by_the_environment_wins_and_a_wrong_path_is_not_guessed_around(tmp_path):
    chosen = fake_blender(tmp_path)
    assert find_blender({"BLENDER": str(chosen), "PATH": ""}) == chosen
    assert find_blender({"BLENDER": str(tmp_path / "missing"), "PATH": str(tmp_path)}) is None
