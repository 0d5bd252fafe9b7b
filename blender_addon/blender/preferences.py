"""Add-on preferences: where the backend is, how to reach it, whether to start it, and how to
install it (Install Backend, its progress and checks)."""

from __future__ import annotations

import threading
from pathlib import Path

import bpy

from ..core.backend_python import backend_python_problem, environment_dir, environment_python
from ..formats.protocol import DEFAULT_HOST, DEFAULT_PORT
from .blender_versions import blend_relative_path_options

ADDON_PACKAGE = __package__.rsplit(".", 1)[0]
LOG_LINES_SHOWN = 6
TORCH_BUILD_ITEMS = [
    ("AUTO", "Detected", "The build for this machine's GPU driver (NVIDIA: CUDA, AMD: ROCm, Apple silicon: MPS, else CPU)"),
    ("CUDA", "NVIDIA (CUDA)", "PyTorch built for NVIDIA GPUs"),
    ("ROCM", "AMD (ROCm)", "PyTorch built for AMD GPUs (Linux)"),
    ("MPS", "Apple (MPS)", "PyTorch for Apple silicon's GPU (macOS)"),
    ("CPU", "CPU only", "PyTorch without GPU support (smallest download; slow)"),
]


def default_data_dir() -> str:
    return str(Path.home() / ".local" / "share" / "avatar-foundry")


_python_checks: dict[tuple[str, str], str] = {}
"""(Backend Python, source folder) -> the one-line result of checking it ('' while it runs)."""


def backend_python_check(python: str, source: str) -> str:
    """The check of the Backend Python as drawn: started on a thread on first sight (it runs the
    interpreter once), so that neither setting the field nor drawing it waits."""
    key = (python, source)
    if key not in _python_checks:
        _python_checks[key] = ""

        def check() -> None:
            _python_checks[key] = backend_python_problem(python, source or None) or f"{python}: has the backend"

        threading.Thread(target=check, daemon=True, name="avatar-foundry-python-check").start()
    return _python_checks[key]


def _recheck_backend_python(prefs: "AvatarFoundryPreferences", context: bpy.types.Context) -> None:
    """Update callback of Backend Python and its source folder: check the new value now."""
    python, source = _absolute(prefs.backend_python), _absolute(prefs.backend_source)
    _python_checks.pop((python, source), None)
    if python:
        backend_python_check(python, source)


def _absolute(path: str) -> str:
    return bpy.path.abspath(path) if path else ""


class AvatarFoundryPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    backend_url: bpy.props.StringProperty(name="Backend URL", default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}")
    token: bpy.props.StringProperty(name="Token", subtype="PASSWORD", description="Leave empty to read it from the data folder")
    data_dir: bpy.props.StringProperty(name="Backend data folder", subtype="DIR_PATH", default=default_data_dir(),
                                       description="The backend's --data-dir: token, jobs, models, and the environment Install Backend makes")
    auto_start: bpy.props.BoolProperty(name="Start backend automatically", default=False)
    backend_python: bpy.props.StringProperty(name="Backend Python", subtype="FILE_PATH", default="", update=_recheck_backend_python,
                                             description="Python with the avatar-foundry backend installed. Empty: the environment "
                                                         "Install Backend made in the backend data folder")
    backend_source: bpy.props.StringProperty(name="Backend source folder", subtype="DIR_PATH", update=_recheck_backend_python,
                                             description="Repository folder, when the backend is not installed into that Python")
    models_dir: bpy.props.StringProperty(name="Models folder", subtype="DIR_PATH",
                                         description="Local model folders (diffusers or .safetensors) to register with the backend")
    output_dir: bpy.props.StringProperty(name="Default output folder", subtype="DIR_PATH", default="//avatar_foundry/",
                                         options=blend_relative_path_options())
    install_python: bpy.props.StringProperty(name="Python for the install", subtype="FILE_PATH",
                                             description="The Python (3.11-3.13) the backend's environment is made from. Empty: "
                                                         "Blender's own Python where supported, else python3.13/3.12/3.11 on PATH")
    torch_build: bpy.props.EnumProperty(name="PyTorch build", items=TORCH_BUILD_ITEMS, default="AUTO")
    torch_source: bpy.props.StringProperty(name="PyTorch source",
                                           description="Where PyTorch is installed from. Empty: PyPI or PyTorch's index for the build; "
                                                       "an index URL; or 'pip' for pip's own configuration. "
                                                       "The AVATAR_FOUNDRY_TORCH_INDEX environment variable overrides it")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        self._draw_install(layout)
        for name in ("backend_url", "token", "data_dir", "auto_start"):
            layout.prop(self, name)
        layout.prop(self, "backend_python")
        self._draw_python_check(layout)
        for name in ("backend_source", "models_dir", "output_dir"):
            layout.prop(self, name)

    def _draw_install(self, layout: bpy.types.UILayout) -> None:
        from .backend_setup import detected_torch_build
        from .session import session

        task = session().install_task
        box = layout.box()
        box.label(text="Backend environment", icon="PACKAGE")
        env = environment_dir(_absolute(self.data_dir) or default_data_dir())
        installed = environment_python(env).is_file()
        box.label(text=f"{'Installed in' if installed else 'Not installed yet; will go to'} {env}")
        row = box.row()
        row.prop(self, "torch_build")
        row.label(text=f"detected: {detected_torch_build().upper()}")
        box.prop(self, "torch_source")
        box.prop(self, "install_python")
        row = box.row()
        if task.running():
            row.operator("avatar_foundry.cancel_install", icon="CANCEL")
            box.progress(factor=task.progress, text=task.stage[:90])
        else:
            row.operator("avatar_foundry.install_backend", text="Repair / Upgrade Backend" if installed else "Install Backend",
                         icon="IMPORT")
        if task.message:
            box.label(text=task.message, icon="CHECKMARK" if task.state == "succeeded" else "ERROR")
        lines = task.report if task.report and not task.running() else task.last_lines(LOG_LINES_SHOWN)
        if lines:
            column = box.column(align=True)
            for line in lines:
                column.label(text=line[:120])

    def _draw_python_check(self, layout: bpy.types.UILayout) -> None:
        if not self.backend_python:
            layout.label(text="Empty: the environment Install Backend makes in the backend data folder", icon="INFO")
            return
        message = backend_python_check(_absolute(self.backend_python), _absolute(self.backend_source))
        ok = message.endswith(": has the backend")
        layout.label(text=message or "checking this Python...", icon="CHECKMARK" if ok else ("ERROR" if message else "TIME"))


def preferences(context: bpy.types.Context | None = None) -> AvatarFoundryPreferences:
    return (context or bpy.context).preferences.addons[ADDON_PACKAGE].preferences
