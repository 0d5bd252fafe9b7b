"""The add-on's plain-Python side of installing, starting and stopping the backend: the PyTorch
build and pip arguments an artist's machine gets, the one-line verdict on a Backend Python, the
cause of a failed start named from the log with its fix, how a killed backend is reported, a Stop
that returns at once, and a stale pid file that never gets an unrelated process signalled."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blender_addon.core.background_task import BackgroundTask, TaskFailed
from blender_addon.core.backend_install import (PIP_CONFIGURATION, TORCH_VERSION, detect_torch_build, find_backend_wheel,
                                                torch_pip_arguments, torch_source)
from blender_addon.core.backend_log import explain_log
from blender_addon.core.backend_process import BackendLaunch, BackendProcess, _alive
from blender_addon.core.backend_python import backend_python_problem, builder_python, default_backend_python
from blender_addon.core.backend_start import start_and_wait
from blender_addon.core.process_exit import describe_exit

REPO = Path(__file__).resolve().parents[1]
TORCH = f"torch=={TORCH_VERSION}"


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A real Python 3.11 without the backend (a fresh venv: the test venv's editable install of
    the checkout is not in it)."""
    import venv

    folder = tmp_path_factory.mktemp("bare-venv")
    venv.EnvBuilder(with_pip=False).create(folder)
    return str(folder / "bin" / "python")


def test_each_machine_gets_the_pytorch_build_its_gpu_driver_asks_for():
    """NVIDIA's driver -> CUDA, AMD's ROCm -> ROCm, Apple silicon -> MPS, anything else -> CPU."""
    nothing = dict(which=lambda name: None, exists=lambda path: False)
    assert detect_torch_build("Linux", "x86_64", which=lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None,
                              exists=lambda path: False) == "cuda"
    assert detect_torch_build("Linux", "x86_64", which=lambda name: None, exists=lambda path: path == "/dev/kfd") == "rocm"
    assert detect_torch_build("Darwin", "arm64", **nothing) == "mps"
    assert detect_torch_build("Darwin", "x86_64", **nothing) == "cpu"
    assert detect_torch_build("Windows", "AMD64", **nothing) == "cpu"
    assert detect_torch_build("Linux", "x86_64", **nothing) == "cpu"


def test_each_pytorch_build_maps_to_the_pip_arguments_that_install_it():
    """PyPI where its wheel is the build (Linux CUDA, macOS), PyTorch's index otherwise; an
    override (index URL, or pip's own configuration) wins; an unknown build is refused."""
    assert torch_pip_arguments("cuda", "Linux") == [TORCH]
    assert torch_pip_arguments("cuda", "Windows") == [TORCH, "--index-url", "https://download.pytorch.org/whl/cu128"]
    assert torch_pip_arguments("rocm", "Linux") == [TORCH, "--index-url", "https://download.pytorch.org/whl/rocm6.4"]
    assert torch_pip_arguments("mps", "Darwin") == [TORCH]
    assert torch_pip_arguments("cpu", "Darwin") == [TORCH]
    assert torch_pip_arguments("cpu", "Linux") == [TORCH, "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert torch_pip_arguments("cpu", "Windows") == [TORCH, "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert torch_pip_arguments("cpu", "Linux", PIP_CONFIGURATION) == [TORCH]
    assert torch_pip_arguments("cuda", "Linux", " https://mirror.example/torch ") == [TORCH, "--index-url", "https://mirror.example/torch"]
    with pytest.raises(ValueError, match="unknown PyTorch build 'vulkan'"):
        torch_pip_arguments("vulkan", "Linux")


def test_the_environment_variable_overrides_the_torch_source_preference(monkeypatch):
    monkeypatch.delenv("AVATAR_FOUNDRY_TORCH_INDEX", raising=False)
    assert torch_source(" https://a/ ") == "https://a/"
    monkeypatch.setenv("AVATAR_FOUNDRY_TORCH_INDEX", "pip")
    assert torch_source("https://a/") == "pip"


def test_an_add_on_without_its_backend_wheel_says_which_zip_to_install(tmp_path):
    with pytest.raises(TaskFailed, match="has no backend wheel .* install the release zip"):
        find_backend_wheel(tmp_path)
    (tmp_path / "backend_wheel").mkdir()
    (tmp_path / "backend_wheel" / "avatar_foundry-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert find_backend_wheel(tmp_path).name == "avatar_foundry-0.1.0-py3-none-any.whl"


def test_a_backend_python_is_judged_in_one_line_naming_the_fix(tmp_path, monkeypatch, bare_python):
    """Empty, missing, a folder, not a Python, a Python without the backend: each says what to do;
    the developer's venv with the checkout as source folder has it."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert "not set: press Install Backend" in backend_python_problem("")
    assert "does not exist: press Install Backend" in backend_python_problem(tmp_path / "nope" / "python")
    assert "is a folder: pick the python executable" in backend_python_problem(tmp_path)
    script = tmp_path / "not-python"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    assert "is not a working Python (exit code 3)" in backend_python_problem(script)
    assert "has no Avatar Foundry backend: press Install Backend" in backend_python_problem(bare_python, tmp_path)
    assert backend_python_problem(bare_python, REPO) is None


def test_the_default_backend_python_is_the_installed_environment_never_a_python_without_the_backend(tmp_path, monkeypatch, bare_python):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_backend_python(tmp_path, "/no/such/python") == ""
    assert default_backend_python(tmp_path, bare_python) == ""
    assert default_backend_python(tmp_path, sys.executable) == sys.executable
    env_python = tmp_path / "backend-env" / "bin" / "python"
    env_python.parent.mkdir(parents=True)
    env_python.symlink_to(sys.executable)
    assert default_backend_python(tmp_path, "/no/such/python") == str(env_python)


def test_the_install_uses_a_supported_python_and_refuses_a_chosen_one_that_is_not(tmp_path):
    assert builder_python("", "/no/such/python", which=lambda name: sys.executable if name == "python3.11" else None) == sys.executable
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho 3.9; echo False\n")
    old.chmod(0o755)
    with pytest.raises(Exception, match=r"is Python 3.9; the backend needs Python 3.11-3.13"):
        builder_python(str(old), sys.executable)


def test_the_cause_of_a_failed_start_is_read_from_the_log_with_its_fix():
    assert "this Python has no backend (No module named 'backend'): press Install Backend" in explain_log(
        ["/usr/bin/python3: Error while finding module specification for 'backend.cli' (ModuleNotFoundError: No module named 'backend')"])
    assert "lacks the package 'torch'" in explain_log(["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'torch'"])
    assert explain_log(["error [INVALID_INPUT]: port: cannot listen on 127.0.0.1:8765: Address already in use",
                        "  hint: is another backend running? pick another --port (0 picks a free one)"]) == (
        "port: cannot listen on 127.0.0.1:8765: Address already in use (is another backend running? pick another --port (0 picks a free one))")
    assert explain_log([]) == "it wrote nothing to its log"


def test_a_backend_killed_by_the_kernels_oom_killer_is_reported_as_out_of_memory(tmp_path):
    """A real process killed with SIGKILL: out of memory only when the kernel's OOM-kill count rose."""
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    victim.send_signal(signal.SIGKILL)
    code = victim.wait(10)
    log = tmp_path / "backend.log"
    log.write_text("INFO: loading the base model\n")
    oom = describe_exit(code, log, 4, 5)
    assert oom.out_of_memory and "killed by SIGKILL (signal 9): out of memory" in oom.message
    assert "use a smaller preset" in oom.message and oom.log_tail == ["INFO: loading the base model"]
    plain = describe_exit(code, log, 4, 4)
    assert not plain.out_of_memory and "killed by SIGKILL (signal 9), by the system or another program" in plain.message
    assert "killed by SIGTERM" in describe_exit(-signal.SIGTERM, None, None, None).message
    exited = describe_exit(1, log, None, None).message
    assert exited.startswith("the backend exited with code 1: INFO: loading the base model")


def _fake_backend(tmp_path: Path, body: str) -> list[str]:
    """A process whose command line is a backend's (``-m backend.cli serve``) running ``body``."""
    script = tmp_path / "fake_backend.py"
    script.write_text(body)
    return [sys.executable, str(script), "-m", "backend.cli", "serve"]


def _running(command: list[str], folder: Path) -> subprocess.Popen:
    """``command`` started in ``folder`` and past its start-up: a process just spawned may not
    show its command line yet (Python 3.13 on Linux), as an orphan of an earlier session does."""
    process = subprocess.Popen(command + ["ready"], cwd=folder)
    while not (folder / "ready").exists():
        time.sleep(0.05)
    (folder / "ready").unlink()
    return process


SLEEPS = "import sys, time, pathlib; pathlib.Path(sys.argv[-1]).touch(); time.sleep(60)"


def test_a_backend_left_by_a_crashed_session_is_ended_at_the_next_start(tmp_path):
    orphan = _running(_fake_backend(tmp_path, SLEEPS), tmp_path)
    try:
        (tmp_path / "backend.pid").write_text(str(orphan.pid))
        assert BackendProcess(tmp_path).clean_orphan(timeout=5.0) == orphan.pid
        orphan.wait(timeout=5.0)
        assert not (tmp_path / "backend.pid").exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()
    assert not _alive(orphan.pid) or orphan.poll() is not None


def test_a_stale_pid_file_naming_an_unrelated_process_never_gets_it_signalled(tmp_path):
    """The pid now belongs to another program (not a backend), or to a backend started later
    than the recorded one: both are left running."""
    unrelated = _running([sys.executable, "-c", SLEEPS], tmp_path)
    later_backend = _running(_fake_backend(tmp_path, SLEEPS), tmp_path)
    try:
        (tmp_path / "backend.pid").write_text(str(unrelated.pid))
        assert BackendProcess(tmp_path).clean_orphan(timeout=5.0) is None
        (tmp_path / "backend.pid").write_text(f'{{"pid": {later_backend.pid}, "start_time": "1", "command": []}}')
        assert BackendProcess(tmp_path).clean_orphan(timeout=5.0) is None
        time.sleep(0.2)
        assert unrelated.poll() is None and later_backend.poll() is None
        assert not (tmp_path / "backend.pid").exists()
    finally:
        unrelated.kill()
        later_backend.kill()


def test_stop_returns_at_once_and_the_backend_ends_in_the_background(tmp_path):
    """A backend that ignores SIGTERM: Stop returns before it is gone; it is killed after the
    timeout, and a Start meanwhile waits for that."""
    process = BackendProcess(tmp_path)
    ignores_term = "import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); pathlib.Path('ready').touch(); time.sleep(60)"
    process.process = subprocess.Popen(_fake_backend(tmp_path, ignores_term), cwd=tmp_path)
    while not (tmp_path / "ready").exists():
        time.sleep(0.05)
    child = process.process
    process.stop_in_background(timeout=2.0)
    assert process.stopping() and child.poll() is None and not process.running()
    process.wait_until_stopped()
    assert child.poll() == -signal.SIGKILL


def test_start_reports_the_cause_when_the_backend_dies_and_never_a_success(tmp_path, monkeypatch, bare_python):
    """A real Python without the backend: Start fails with the one-line check and the fix."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    task = BackgroundTask("Start Backend")
    launch = BackendLaunch(bare_python, 9, tmp_path / "data", working_dir=tmp_path)
    from blender_addon.core.backend_client import BackendClient

    task.start(lambda running: start_and_wait(running, BackendProcess(tmp_path), launch, lambda: BackendClient("http://127.0.0.1:9", "t", 1.0)))
    task.wait(60)
    assert task.state == "failed" and "has no Avatar Foundry backend: press Install Backend" in task.message


def test_start_waits_for_health_and_reports_what_answered(tmp_path, monkeypatch):
    """The real backend from this checkout: success only once its health answered."""
    import socket

    from blender_addon.core.backend_client import BackendClient, read_token

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path / "data"
    backend = BackendProcess(tmp_path)
    task = BackgroundTask("Start Backend")
    launch = BackendLaunch(sys.executable, port, data, working_dir=REPO)
    task.start(lambda running: start_and_wait(running, backend, launch, lambda: BackendClient(f"http://127.0.0.1:{port}", read_token(data), 2.0)))
    try:
        task.wait(180)
        assert task.state == "succeeded", task.message
        assert task.message.startswith("backend 0.1.0 ready on") and task.result["status"] == "ok"
        backend.process.send_signal(signal.SIGKILL)
        backend.process.wait(10)
        report = backend.exit_report()
        assert "killed by SIGKILL" in report.message and backend.exit_report() is None
    finally:
        backend.stop()


def test_cancel_ends_the_running_command_at_once(tmp_path):
    task = BackgroundTask("Install Backend")
    task.start(lambda running: str(running.run_command([sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"])))
    while "working" not in task.last_lines(5):
        time.sleep(0.05)
    task.cancel()
    assert task.wait(10) and task.state == "cancelled" and task.message == "Install Backend cancelled"


def test_a_backend_that_exits_at_start_fails_start_with_the_cause_from_its_log(tmp_path):
    """The port is taken by another program: the real backend exits, and Start says why and what to do."""
    import socket

    from blender_addon.core.backend_client import BackendClient

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        task = BackgroundTask("Start Backend")
        launch = BackendLaunch(sys.executable, port, tmp_path / "data", working_dir=REPO)
        task.start(lambda running: start_and_wait(running, BackendProcess(tmp_path), launch,
                                                  lambda: BackendClient(f"http://127.0.0.1:{port}", "t", 0.5)))
        task.wait(180)
    assert task.state == "failed"
    assert task.message.startswith("the backend exited with code 2: port: cannot listen on")
    assert "Address already in use (is another backend running? pick another --port" in task.message


def test_a_failed_install_step_names_itself_the_cause_and_the_fix_and_a_rerun_reuses_the_environment(tmp_path):
    """A real environment is created; PyTorch cannot be found (fault: pip may not look at any
    index), so the install stops there with pip's own last line; pressing it again reuses the
    environment instead of building it anew."""
    from blender_addon.core.backend_install import InstallPlan, install
    from blender_addon.core.backend_python import environment_dir

    data = tmp_path / "data"
    plan = InstallPlan(environment_dir(data), sys.executable, tmp_path / "avatar_foundry-0.1.0-py3-none-any.whl",
                       ["--no-index", "no-such-torch-build==1.0"], data)
    for attempt in range(2):
        task = BackgroundTask("Install Backend")
        task.start(lambda running: "\n".join(install(running, plan, data / "install.log")))
        task.wait(300)
        assert task.state == "failed"
        assert task.message.startswith("installing PyTorch 2.13.0 failed (exit code 1): ERROR: Could not find a version that satisfies the requirement no-such-torch-build==1.0")
        assert "check the PyTorch build and source in the preferences" in task.message
    log = (data / "install.log").read_text()
    assert log.count("== creating the environment") == 1 and "== reusing the environment" in log
    assert plan.python.is_file()
