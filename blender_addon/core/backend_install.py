"""Install Backend: a Python environment in the backend data folder with the backend's wheel (the
one shipped inside the add-on), its runtime dependencies and the PyTorch build for this machine.

Steps: create (or repair) the environment -> PyTorch -> the backend wheel and its dependencies ->
files the backend reads from other packages -> ``avatar-foundry doctor``. Each step is a
subprocess whose output goes to the panel and to ``install.log`` in the data folder; Cancel ends it.
A rerun repairs or upgrades the same environment (a broken one is rebuilt).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .background_task import BackgroundTask, TaskFailed
from .backend_python import PythonProblem, environment_python, probe

TORCH_BUILDS = ("cuda", "rocm", "mps", "cpu")
TORCH_VERSION = "2.13.0"
"""The PyTorch release the backend is tested with (pyproject allows >=2.4,<2.15)."""
PYTORCH_INDEX = "https://download.pytorch.org/whl/"
CUDA_INDEX_TAG = "cu128"
ROCM_INDEX_TAG = "rocm6.4"
PIP_CONFIGURATION = "pip"
"""A torch source meaning: no index of our own, whatever pip is configured with (PyPI by default)."""
TORCH_SOURCE_ENV = "AVATAR_FOUNDRY_TORCH_INDEX"
"""Overrides the torch source preference: an index URL, or 'pip'."""
FILE_ONLY_PACKAGES = ("open_clip_torch==3.3.0",)
"""Installed without dependencies for a file the backend reads (open_clip's CLIP vocabulary)."""
WHEEL_FOLDER_NAME = "backend_wheel"
"""The folder inside the add-on that holds the backend wheel ``build.py addon`` put there."""
INSTALL_LOG_NAME = "install.log"


def detect_torch_build(system: str | None = None, machine: str | None = None,
                       which: Callable[[str], str | None] = shutil.which,
                       exists: Callable[[str], bool] = os.path.exists) -> str:
    """The PyTorch build this machine can use: an NVIDIA driver -> cuda, AMD's ROCm -> rocm, Apple
    silicon -> mps, otherwise cpu. It looks for the drivers' own tools and device files only."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    if system == "Darwin":
        return "mps" if machine in ("arm64", "aarch64") else "cpu"
    if which("nvidia-smi") or exists("/proc/driver/nvidia/version"):
        return "cuda"
    if system == "Linux" and (which("rocminfo") or exists("/dev/kfd")):
        return "rocm"
    return "cpu"


def torch_pip_arguments(build: str, system: str, source: str = "") -> list[str]:
    """pip's arguments that install PyTorch's ``build`` on ``system`` ('Linux', 'Windows', 'Darwin').

    ``source`` overrides where it comes from: an index URL, or 'pip' for pip's own configuration.
    Without it: PyPI where PyPI's wheel is that build (Linux wheels are CUDA builds, macOS wheels
    carry MPS), else PyTorch's own index for the build."""
    if build not in TORCH_BUILDS:
        raise ValueError(f"unknown PyTorch build {build!r}; one of {', '.join(TORCH_BUILDS)}")
    requirement = [f"torch=={TORCH_VERSION}"]
    source = source.strip()
    if source == PIP_CONFIGURATION:
        return requirement
    if source:
        return requirement + ["--index-url", source]
    if system == "Darwin" or build == "mps":
        return requirement
    if build == "cuda":
        return requirement if system == "Linux" else requirement + ["--index-url", PYTORCH_INDEX + CUDA_INDEX_TAG]
    if build == "rocm":
        return requirement + ["--index-url", PYTORCH_INDEX + ROCM_INDEX_TAG]
    return requirement + ["--index-url", PYTORCH_INDEX + "cpu"]


def torch_source(preference: str) -> str:
    """The torch source in force: the environment variable, else the preference."""
    return os.environ.get(TORCH_SOURCE_ENV, "").strip() or preference.strip()


def find_backend_wheel(addon_dir: str | os.PathLike) -> Path:
    """The backend wheel shipped inside the add-on (the newest, if several)."""
    wheels = sorted(Path(addon_dir, WHEEL_FOLDER_NAME).glob("avatar_foundry-*.whl"))
    if not wheels:
        raise TaskFailed(f"this add-on has no backend wheel in {Path(addon_dir, WHEEL_FOLDER_NAME)}: "
                         "install the release zip (python build.py addon builds one with the wheel inside)")
    return wheels[-1]


@dataclass
class InstallPlan:
    env_dir: Path
    builder_python: str
    """The Python that creates the environment (its version is the environment's)."""
    wheel: Path
    torch_arguments: list[str]
    data_dir: Path
    pip_environment: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def python(self) -> Path:
        return environment_python(self.env_dir)

    def pip(self, *arguments: str) -> list[str]:
        return [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", *arguments]


STEP_WEIGHTS = {"environment": 0.05, "torch": 0.5, "backend": 0.25, "package": 0.02, "files": 0.02, "doctor": 0.06}
INSTALLED_PROGRESS = sum(STEP_WEIGHTS.values())
"""Where the bar stands when the environment is ready; starting the backend fills the rest."""
PIP_ACTIVITY = re.compile(r"^(Collecting|Downloading|Installing collected packages|Successfully installed|Requirement already satisfied)")


def install(task: BackgroundTask, plan: InstallPlan, log_path: Path) -> list[str]:
    """Run every step (in ``task``'s worker thread); the doctor's report lines when all succeeded."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        def run(step: str, label: str, command: list[str], fix: str) -> None:
            _enter(task, step, label)
            log.write(f"\n== {label}\n$ {' '.join(command)}\n")
            step_end = _step_bounds(step)[1]
            code = task.run_command(command, on_line=lambda line: (log.write(line), _note_pip_activity(task, line, step_end)),
                                    env=plan.pip_environment)
            log.flush()
            if code != 0:
                raise TaskFailed(f"{label} failed (exit code {code}): {_first_error(task.last_lines(60))[:160]}; {fix} (full log: {log_path})")

        if _reusable_environment(task, plan):
            _enter(task, "environment", f"reusing the environment in {plan.env_dir} (repair or upgrade)")
            log.write(f"\n== {task.stage}\n")
        else:
            run("environment", f"creating the environment in {plan.env_dir}", [plan.builder_python, "-m", "venv", str(plan.env_dir)],
                "this Python cannot create environments (Debian/Ubuntu: apt install python3-venv); pick another Python for the install")
        run("torch", f"installing PyTorch {TORCH_VERSION}", plan.pip(*plan.torch_arguments),
            "check the PyTorch build and source in the preferences")
        run("backend", f"installing the backend ({plan.wheel.name}) and its dependencies", plan.pip(str(plan.wheel)),
            "check the network connection and press Install Backend again")
        run("package", "reinstalling the backend package itself (repair or upgrade)",
            plan.pip("--no-deps", "--force-reinstall", str(plan.wheel)), "press Install Backend again")
        run("files", "installing files the backend reads", plan.pip("--no-deps", *FILE_ONLY_PACKAGES),
            "press Install Backend again")
        _enter(task, "doctor", "checking the installation (avatar-foundry doctor)")
        lines: list[str] = []
        code = task.run_command([str(plan.python), "-m", "backend.cli", "doctor", "--skip-bpy", "--data-dir", str(plan.data_dir)], on_line=lines.append,
                                env=plan.pip_environment)
        log.write("\n== doctor\n" + "".join(lines))
        report = [line.rstrip() for line in lines if line.strip()]
        if code != 0:
            task.report = report
            raise TaskFailed(f"the backend installed but its checks found problems: {report[-1] if report else code}; "
                             "see the checks below and press Install Backend again")
        return report


def _first_error(lines: list[str]) -> str:
    """pip's first ERROR line of the last command (its cause; later ones are advice), else its last line."""
    command_start = max((index for index, line in enumerate(lines) if line.startswith("$ ")), default=-1)
    output = [line.strip() for line in lines[command_start + 1:] if line.strip()]
    return next((line for line in output if line.startswith("ERROR:")), output[-1] if output else "no output")


def _step_bounds(step: str) -> tuple[float, float]:
    """Where the bar stands when ``step`` starts and when it ends."""
    steps = list(STEP_WEIGHTS)
    start = sum(STEP_WEIGHTS[name] for name in steps[:steps.index(step)])
    return start, start + STEP_WEIGHTS[step]


def _enter(task: BackgroundTask, step: str, label: str) -> None:
    task.set_stage(label, _step_bounds(step)[0])
    task.add_line(f"== {label}")


def _note_pip_activity(task: BackgroundTask, line: str, step_end: float) -> None:
    """Creep the bar forward within a step as pip reports packages (it cannot know the total)."""
    if PIP_ACTIVITY.match(line):
        task.progress = min(step_end, task.progress + 0.004)


def _reusable_environment(task: BackgroundTask, plan: InstallPlan) -> bool:
    """An environment whose Python runs is kept (repair/upgrade); a broken one is removed."""
    if not plan.python.exists() and not plan.env_dir.exists():
        return False
    try:
        probe(plan.python)
        return True
    except PythonProblem as problem:
        task.add_line(f"the environment in {plan.env_dir} is broken ({problem}); rebuilding it")
        shutil.rmtree(plan.env_dir)
        return False
