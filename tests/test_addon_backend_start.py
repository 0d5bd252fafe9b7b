"""Start and Stop as the artist meets them, in a fresh headless Blender with the add-on installed
from its zip: a Backend Python is judged in one line as soon as it is set; Start with a Python that
has no backend fails naming the fix, never "started"; Start against a real backend succeeds only
once it answers; a backend the system kills is reported in the panel (not "Connected"); Stop
returns at once."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.blender_matrix import BACKEND_PYTHON

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.blender

SESSION_SCRIPT = r'''
import os, signal, sys, time, types, venv, bpy


class RecordingLayout:
    """Stands in for Blender's UILayout: records what a draw function shows, in order."""
    def __init__(self):
        self.texts = []
    def label(self, text="", icon="NONE"):
        self.texts.append(text)
    def prop(self, data, name, **options):
        self.texts.append(f"[{name}]")
    def operator(self, idname, text="", **options):
        self.texts.append(f"<{text or idname}>")
        return types.SimpleNamespace()
    def progress(self, factor=0.0, text=""):
        self.texts.append(f"{100 * factor:.0f}% {text}")
    def box(self):
        return self
    def row(self, **options):
        return self
    def column(self, **options):
        return self


class Drawn:
    """``self`` for a draw method: the real preferences or panel, with a recording layout."""
    def __init__(self, target, cls):
        self._target, self._cls, self.layout = target, cls, RecordingLayout()
    def __getattr__(self, name):
        found = getattr(self._cls, name, None)
        return found.__get__(self) if callable(found) and name.startswith("_draw") else getattr(self._target, name)


def drawn(target, cls):
    view = Drawn(target, cls)
    cls.draw(view, bpy.context)
    return "\n".join(view.layout.texts)

repo, backend_python, bare_dir, data_dir, port, zip_path = sys.argv[-6:]
bpy.ops.wm.read_factory_settings(use_empty=True)
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True) == {"FINISHED"}
name = "bl_ext.user_default.avatar_foundry"
session_module = sys.modules[name + ".blender.session"]
preferences_module = sys.modules[name + ".blender.preferences"]
prefs = bpy.context.preferences.addons[name].preferences
prefs.data_dir, prefs.backend_url = data_dir, f"http://127.0.0.1:{port}"
state = session_module.session()

def verdict(python, source=""):
    deadline = time.monotonic() + 60
    while not (message := preferences_module.backend_python_check(python, source)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return message

assert prefs.backend_python == "", repr(prefs.backend_python) + ": the default Backend Python is the installed environment, not Blender's own"
os.makedirs(data_dir, exist_ok=True)
prefs.backend_python = data_dir
assert "is a folder: pick the python executable" in verdict(data_dir), verdict(data_dir)
venv.EnvBuilder(with_pip=False).create(bare_dir)
bare = os.path.join(bare_dir, "bin", "python")
prefs.backend_python = bare
assert "has no Avatar Foundry backend: press Install Backend" in verdict(bare), verdict(bare)
try:
    bpy.ops.avatar_foundry.backend_start()
    raise AssertionError("Start reported success with a Python that has no backend")
except RuntimeError as error:
    assert "has no Avatar Foundry backend: press Install Backend" in str(error), error
assert state.health is None
preferences_text = drawn(prefs, type(prefs))
assert "has no Avatar Foundry backend: press Install Backend" in preferences_text, preferences_text
assert "<Install Backend>" in preferences_text and "Not installed yet; will go to " + os.path.join(data_dir, "backend-env") in preferences_text
assert "detected: CPU" in preferences_text and "[torch_build]" in preferences_text and "[torch_source]" in preferences_text
panels = sys.modules[name + ".blender.panels"]
panel_text = drawn(None, panels.AVATAR_PT_backend).replace("\n", " ")
assert "Not connected" in panel_text and "has no Avatar Foundry" in panel_text, panel_text

prefs.backend_python, prefs.backend_source = backend_python, repo
assert verdict(backend_python, repo).endswith(": has the backend")
assert bpy.ops.avatar_foundry.backend_start() == {"FINISHED"}
assert state.health["status"] == "ok" and state.start_task.message.startswith("backend 0.1.0 ready on")
assert "Connected: cpu" in drawn(None, panels.AVATAR_PT_backend)

state.backend.process.send_signal(signal.SIGKILL)
state.backend.process.wait(30)
session_module.drain_now()
assert state.health is None and "the backend was killed by SIGKILL (signal 9)" in state.board.last_error, state.board.last_error

assert bpy.ops.avatar_foundry.backend_start() == {"FINISHED"}
assert state.board.last_error == ""
process = state.backend.process
assert bpy.ops.avatar_foundry.backend_stop() == {"FINISHED"}
assert not state.backend.running() and state.health is None
process.wait(30)
session_module.drain_now()
assert state.board.last_error == "", "a backend we stopped is not reported as killed"
print("START-STOP-OK")
'''


def test_start_reports_only_what_it_saw_and_a_killed_backend_is_reported(tmp_path):
    subprocess.run([sys.executable, str(REPO / "build.py"), "addon"], cwd=REPO, check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([sys.executable, "-c", SESSION_SCRIPT, str(REPO), BACKEND_PYTHON, str(tmp_path / "bare"), str(tmp_path / "data"), str(port),
                             str(REPO / "dist" / "avatar_foundry-0.1.0.zip")],
                            capture_output=True, text=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, cwd=tmp_path, timeout=600)
    assert "START-STOP-OK" in result.stdout, result.stdout[-4000:] + result.stderr[-4000:]
