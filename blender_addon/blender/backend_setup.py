"""Install Backend and its Cancel, from the add-on's preferences: thin operators over
``core.backend_install`` (the work runs on a worker thread; the preferences draw its progress, the
last lines of pip's output and the doctor's checks)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import bpy

from ..core.background_task import BackgroundTask, TaskFailed
from ..core.backend_install import (INSTALL_LOG_NAME, INSTALLED_PROGRESS, InstallPlan, detect_torch_build, find_backend_wheel, install,
                                    torch_pip_arguments, torch_source)
from ..core.backend_python import PythonProblem, builder_python, environment_dir
from ..core.backend_start import start_and_wait
from .preferences import preferences
from .session import fixed_client_factory, session
from .task_operator import BackgroundTaskOperator

ADDON_DIR = Path(__file__).resolve().parents[1]
_detected_build: str | None = None


def detected_torch_build() -> str:
    """This machine's PyTorch build, detected once per session (it looks for driver files)."""
    global _detected_build
    if _detected_build is None:
        _detected_build = detect_torch_build()
    return _detected_build


class AVATAR_OT_install_backend(BackgroundTaskOperator, bpy.types.Operator):
    """Create the backend's Python environment in the backend data folder, install the backend with PyTorch for this machine, check it and start it (again: repair or upgrade)"""

    bl_idname = "avatar_foundry.install_backend"
    bl_label = "Install Backend"
    started_message = "installing the backend: progress below, in the add-on's preferences"

    def _begin(self, context) -> BackgroundTask:
        prefs = preferences(context)
        data_dir = Path(bpy.path.abspath(prefs.data_dir)).expanduser()
        chosen_python = bpy.path.abspath(prefs.install_python) if prefs.install_python else ""
        build = detected_torch_build() if prefs.torch_build == "AUTO" else prefs.torch_build.lower()
        source = torch_source(prefs.torch_source)
        wheel = find_backend_wheel(ADDON_DIR)
        state = session()
        launch = state.launch(context)
        client_factory = fixed_client_factory(context)
        prefs.backend_python = ""  # automatic: the environment this makes

        def work(task: BackgroundTask) -> str:
            try:
                python = builder_python(chosen_python, sys.executable)
            except PythonProblem as problem:
                raise TaskFailed(str(problem)) from None
            plan = InstallPlan(environment_dir(data_dir), python, wheel, torch_pip_arguments(build, platform.system(), source), data_dir)
            if state.backend.running():
                task.set_stage("stopping the running backend", 0.0)
                state.backend.stop()
            task.report = install(task, plan, data_dir / INSTALL_LOG_NAME)
            launch.python, launch.working_dir = str(plan.python), None
            ready = start_and_wait(task, state.backend, launch, client_factory, progress_from=INSTALLED_PROGRESS)
            state.health, state.models = task.result, client_factory().models()
            return f"installed in {plan.env_dir} (PyTorch {build}); {ready}"

        state.install_task.start(work)
        return state.install_task


class AVATAR_OT_cancel_install(bpy.types.Operator):
    """Stop the backend install (pip is ended at once; pressing Install Backend again continues from what was installed)"""

    bl_idname = "avatar_foundry.cancel_install"
    bl_label = "Cancel Install"

    def execute(self, context):
        session().install_task.cancel()
        return {"FINISHED"}


CLASSES = (AVATAR_OT_install_backend, AVATAR_OT_cancel_install)
