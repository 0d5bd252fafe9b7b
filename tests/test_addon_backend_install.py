"""An artist's install, headless: the add-on zip built from this checkout is installed into a fresh
Blender, Install Backend is pressed (into a temporary data folder, with the backend wheel shipped
in the zip), the backend starts from the environment it made, and a conditions render goes
through it as an echo-conditions job whose contact sheet comes back into Blender.

Slow (PyTorch and the backend's dependencies are installed into a fresh environment: a few
minutes on 2 cores), so it is the only test that does this."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.blender_matrix import IN_BLENDER_MATRIX

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.blender, pytest.mark.slow,
              pytest.mark.skipif(IN_BLENDER_MATRIX, reason="installs PyTorch into a fresh environment (minutes, and for Python 3.13 "
                                 "no CPU wheel lies on this machine): run once, under the main Blender")]

SESSION_SCRIPT = r'''
import json, sys, time, bpy, addon_utils
data_dir, results, port, zip_path = sys.argv[-4:]
started = time.monotonic()
bpy.ops.wm.read_factory_settings(use_empty=True)
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True) == {"FINISHED"}
name = "bl_ext.user_default.avatar_foundry"
addon = sys.modules[name]
session_module = sys.modules[name + ".blender.session"]
prefs = bpy.context.preferences.addons[name].preferences
prefs.data_dir, prefs.output_dir, prefs.backend_url = data_dir, results, f"http://127.0.0.1:{port}"
prefs.backend_python = "/no/such/python"
state = session_module.session()

# Start with a Backend Python that does not exist fails with the fix, never a success.
try:
    bpy.ops.avatar_foundry.backend_start()
    raise AssertionError("Start succeeded without a backend")
except RuntimeError as error:
    assert "does not exist: press Install Backend" in str(error), error

# Without a window the button's invoke is not available: execute runs the same worker thread and waits for it.
assert bpy.ops.avatar_foundry.install_backend() == {"FINISHED"}
task = state.install_task
print(f"[{time.monotonic() - started:6.1f} s] install: {task.state}: {task.message}", flush=True)
assert task.state == "succeeded", task.message + "\n" + "\n".join(task.last_lines(30))
assert task.report[-1] == "ok" and any(line.startswith("torch ") for line in task.report), task.report
log = open(data_dir + "/install.log").read()
for step in ("== creating the environment", "== installing PyTorch", "== installing the backend", "== doctor"):
    assert step in log, step
env_python = state.launch(bpy.context).python
assert prefs.backend_python == "" and env_python.startswith(data_dir) and "backend-env" in env_python, env_python
assert state.backend.process.args[0] == env_python and state.health["status"] == "ok"

assert bpy.ops.avatar_foundry.add_demo_head() == {"FINISHED"}
conditions = bpy.context.scene.avatar_foundry.conditions
conditions.views, conditions.resolution, conditions.output_dir = 2, 32, results + "/bundle"
assert bpy.ops.avatar_foundry.render_conditions() == {"FINISHED"}
assert bpy.ops.avatar_foundry.submit_job(kind="echo-conditions", params_json='{"thumbnail_size": 32}') == {"FINISHED"}
deadline = time.monotonic() + 300
while not state.imported and time.monotonic() < deadline:
    session_module.drain_now()
    assert not state.board.last_error, state.board.last_error
    time.sleep(0.2)
assert state.imported, state.board.ordered()
job = state.board.ordered()[0]
print(f"[{time.monotonic() - started:6.1f} s] first conditions render back from the installed backend: job {job['id']} {job['state']}", flush=True)
sheet = [image for image in bpy.data.images if image.get("avatar_foundry_job_id") == job["id"]]
assert job["state"] == "succeeded" and sheet and sheet[0].size[0] > 0, [image.name for image in bpy.data.images]

# Again: a repair reuses the environment, stops the backend it runs and starts it anew.
first = state.backend.process
assert bpy.ops.avatar_foundry.install_backend() == {"FINISHED"}, task.message
print(f"[{time.monotonic() - started:6.1f} s] repair: {task.state}: {task.message}", flush=True)
assert task.state == "succeeded" and first.poll() is not None and state.backend.running() and state.backend.process is not first
assert "== reusing the environment in" in open(data_dir + "/install.log").read()

process = state.backend.process
assert bpy.ops.avatar_foundry.backend_stop() == {"FINISHED"}
process.wait(30)
print("INSTALL-BACKEND-OK", json.dumps({"seconds": round(time.monotonic() - started, 1)}), flush=True)
'''


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_install_backend_from_the_preferences_makes_a_backend_that_runs_a_job(tmp_path):
    subprocess.run([sys.executable, str(REPO / "build.py"), "addon"], cwd=REPO, check=True, capture_output=True)
    addon_zip = REPO / "dist" / "avatar_foundry-0.1.0.zip"
    # pip's own configuration (this machine's package sources), not PyTorch's index; the user's
    # Blender configuration is never touched (HOME is the temporary folder)
    env = {key: value for key, value in os.environ.items() if key.startswith("PIP_")}
    env.update(HOME=str(tmp_path), PATH="/usr/bin:/bin", AVATAR_FOUNDRY_TORCH_INDEX="pip", PYTHONUNBUFFERED="1")
    result = subprocess.run([sys.executable, "-c", SESSION_SCRIPT, str(tmp_path / "data"), str(tmp_path / "results"),
                             str(_free_port()), str(addon_zip)], capture_output=True, text=True, env=env, timeout=1500)
    assert "INSTALL-BACKEND-OK" in result.stdout, result.stdout[-6000:] + result.stderr[-6000:]
    print(result.stdout[-3000:])
