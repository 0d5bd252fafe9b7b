"""The add-on's running state in this Blender session: the job watcher and board, the backend
subprocess, and the timer that hands background results to the main thread."""

from __future__ import annotations

import atexit
import sys
from pathlib import Path
from typing import Callable

import bpy

from ..core.backend_client import BackendClient, BackendError, read_token
from ..core.background_task import BackgroundTask, TaskFailed
from ..core.backend_process import BackendLaunch, BackendProcess
from ..core.backend_python import default_backend_python
from ..core.backend_start import start_and_wait
from ..core.job_requests import follow_up
from ..core.job_watch import HEALTH_TASK, JobBoard, JobEvent, JobWatcher
from .all_or_nothing import all_or_nothing
from .preferences import ADDON_PACKAGE, preferences

SCAN_TASK = "Register Models Folder"
UNLOAD_TASK = "Free Memory"

TIMER_INTERVAL_SECONDS = 0.25


def make_client(context: bpy.types.Context | None = None, timeout: float = 30.0) -> BackendClient:
    prefs = preferences(context)
    token = prefs.token or read_token(prefs.data_dir)
    return BackendClient(prefs.backend_url, token, timeout)


def fixed_client_factory(context: bpy.types.Context | None = None) -> Callable[[], BackendClient]:
    """A client maker for worker threads: the preferences are read here, on the main thread; the
    token file is read at each call (a starting backend writes it)."""
    prefs = preferences(context)
    url, token, data_dir = prefs.backend_url, prefs.token, bpy.path.abspath(prefs.data_dir)
    return lambda: BackendClient(url, token or read_token(data_dir), 5.0)


def state_dir() -> Path:
    """Writable folder of the add-on (the extension's user folder when installed as an extension)."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, create=True))
    except ValueError:  # imported from the repository, not installed as an extension
        folder = Path(bpy.utils.user_resource("CONFIG")) / "avatar_foundry"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def scan_request(folder: str) -> Callable[[BackendClient], dict]:
    """Register a models folder, then list the models: {"report": {"added", "skipped"}, "models": [...]}."""
    return lambda client: {"report": client.scan_models(folder), "models": client.models()}


class Session:
    STARTUP_GRACE_SECONDS = 120.0
    """How long a job submitted right after starting the backend waits for it to answer."""

    def __init__(self) -> None:
        self.board = JobBoard()
        self.watcher = JobWatcher(make_client)
        self.backend = BackendProcess(state_dir())
        self.start_task = BackgroundTask("Start Backend")
        self.install_task = BackgroundTask("Install Backend")
        self.health: dict | None = None
        self.models: list[dict] = []
        """The backend's registered models (offered by the model fields of the panels)."""
        self.imported: list[str] = []
        self.rig_name: str | None = None
        self.animation_camera: str | None = None
        self.checking = False
        self.scanning = False
        self.models_report: dict | None = None
        """The last Register Models Folder answer: {"added": [...], "skipped": [{"path", "reason"}]}."""
        self.info = ""
        """The last background request's outcome, for the Backend panel."""
        self.gallery_job: str | None = None
        """The multiview job whose images the gallery shows (the last one imported)."""
        self.gallery_index = 0
        self.notices: dict[str, list[str]] = {}
        """Job id -> what its results say the artist should know (prompts cut to CLIP's length...)."""

    def check_health(self, context: bpy.types.Context | None = None) -> dict:
        """Ask the backend now and wait for it (scripts; the Check button uses ``check_in_background``)."""
        client = make_client(context, timeout=5.0)
        try:
            self._answered({"health": client.health(), "models": client.models()})
        except BackendError:
            self.health = None
            raise
        return self.health

    def check_in_background(self) -> None:
        self.checking = True
        self.watcher.run(HEALTH_TASK, lambda client: {"health": client.health(), "models": client.models()})

    def scan_in_background(self, folder: str) -> None:
        self.scanning = True
        self.watcher.run(SCAN_TASK, scan_request(folder))

    def unload_in_background(self) -> None:
        self.watcher.run(UNLOAD_TASK, lambda client: client.unload())

    def _answered(self, answer: dict) -> None:
        """The backend answered a health request: show it, clear the error box, resume following."""
        self.health = answer["health"]
        if "models" in answer:
            self.models = answer["models"]
        self.board.backend_answers(clear_all=True)
        from .output_folders import results_folder

        self.watcher.resume(self.board.ordered(), results_folder())

    def _take_result(self, event: JobEvent) -> None:
        if event.task == HEALTH_TASK:
            self.checking = False
            self._answered(event.payload)
            self.info = f"backend {self.health.get('version')} on {self.health.get('device_name')}"
        elif event.task == SCAN_TASK:
            self.scanning = False
            self.models_report, self.models = event.payload["report"], event.payload["models"]
            self.info = f"registered {len(self.models_report['added'])} model(s); {len(self.models_report['skipped'])} skipped"
        elif event.task == UNLOAD_TASK:
            self.info = f"unloaded {event.payload} model(s)"

    def _task_failed(self, event: JobEvent) -> None:
        if event.task == HEALTH_TASK:
            self.checking, self.health = False, None
        elif event.task == SCAN_TASK:
            self.scanning = False

    def reachable(self, context: bpy.types.Context | None = None) -> bool:
        try:
            self.check_health(context)
        except BackendError:
            return False
        return True

    def launch(self, context: bpy.types.Context | None = None) -> BackendLaunch:
        """How the preferences say to run the backend; an empty Backend Python means the installed
        environment (or Blender's own Python where the backend is installed in it)."""
        prefs = preferences(context)
        data_dir = Path(bpy.path.abspath(prefs.data_dir))
        python = bpy.path.abspath(prefs.backend_python) if prefs.backend_python else default_backend_python(data_dir, sys.executable)
        return BackendLaunch(python, _port(prefs.backend_url), data_dir,
                             Path(bpy.path.abspath(prefs.backend_source)) if prefs.backend_source else None)

    def start_backend(self, context: bpy.types.Context) -> int:
        return self.backend.start(self.launch(context))

    def start_backend_and_wait(self, context: bpy.types.Context, launch: BackendLaunch | None = None) -> BackgroundTask:
        """Start Backend on a worker thread that succeeds only once the backend's health answers
        (the panel shows its progress, and the cause from the log when it fails)."""
        launch = launch or self.launch(context)
        client_factory = fixed_client_factory(context)

        def work(task: BackgroundTask) -> str:
            message = start_and_wait(task, self.backend, launch, client_factory)
            self.health = task.result  # type: ignore[assignment]
            self.models = client_factory().models()
            self.board.last_error = ""
            return message

        self.start_task.start(work)
        return self.start_task

    def notice_backend_exit(self) -> None:
        """Main thread: a backend this session started that ended on its own is reported (how it
        ended, from its exit status and the kernel's OOM count) and no longer shown as connected."""
        if self.start_task.running() or self.install_task.running():
            return  # the start in progress (or the install's) reports it itself
        report = self.backend.exit_report()
        if report is not None:
            self.health = None
            self.board.last_error = report.message

    def handle(self, event: JobEvent, scene: bpy.types.Scene) -> None:
        """Main thread only: record the event, fill in the next step's reference when a job
        succeeds, import downloaded results."""
        self.board.apply(event)
        if event.kind == "unreachable" or event.unreachable:
            self.health = None
        elif event.kind == "result":
            self._take_result(event)
        elif event.kind == "error" and event.task:
            self._task_failed(event)
        if event.kind == "update" and event.job is not None and (step := follow_up(event.job)):
            group, field, reference = step
            setattr(getattr(scene.avatar_foundry, group), field, reference)
        if event.kind == "downloaded" and event.folder is not None:
            self._import(event, scene)

    def _import(self, event: JobEvent, scene: bpy.types.Scene) -> None:
        """Bring a downloaded result into the scene, frame what was added, keep its notices."""
        from ..formats.notices import read_notices
        from .importers import import_result, imported_objects
        from .viewport import frame_in_viewports

        rig = bpy.data.objects.get(self.rig_name) if self.rig_name else None
        camera = bpy.data.objects.get(self.animation_camera) if self.animation_camera else None
        self.notices[event.job["id"]] = read_notices(event.folder)
        try:
            with all_or_nothing(bpy.context):
                self.imported.append(import_result(event.folder, event.job, scene, rig, camera))
            if event.job["kind"] == "multiview":
                self.gallery_job, self.gallery_index = event.job["id"], 0
            frame_in_viewports(bpy.context, imported_objects(scene, event.job["id"]))
        except Exception as error:  # an unreadable result must not stop the timer; nothing half-imported stays
            self.board.last_error = f"import of job {event.job['id']} failed: {error}"

    def close(self) -> None:
        self.watcher.stop()
        self.start_task.cancel()
        self.install_task.cancel()
        self.backend.stop()


def _port(url: str) -> int:
    from urllib.parse import urlparse

    return urlparse(url).port or 8765


_session: Session | None = None


def session() -> Session:
    global _session
    if _session is None:
        _session = Session()
    return _session


def _drain() -> float | None:
    if _session is None:
        return None
    _session.notice_backend_exit()
    events = _session.watcher.drain()
    for event in events:
        _session.handle(event, bpy.context.scene)
    global _was_busy
    busy = _session.start_task.running() or _session.install_task.running()
    if events or busy or _was_busy:
        _redraw_add_on_areas()
    _was_busy = busy
    return TIMER_INTERVAL_SECONDS


_was_busy = False


def _redraw_add_on_areas() -> None:
    """The sidebar and the preferences (Install Backend's progress) of every window."""
    for window in bpy.context.window_manager.windows if bpy.context.window_manager else ():
        for area in window.screen.areas if window.screen else ():
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


def _start_backend_if_wanted() -> None:
    """One-shot timer after registration: the preferences' "start backend automatically"."""
    if _session is None:
        return None
    try:
        if preferences().auto_start and not _session.backend.running() and not _session.reachable():
            _session.start_backend_and_wait(bpy.context)
    except (BackendError, OSError, TaskFailed) as error:
        _session.board.last_error = f"could not start the backend: {error}"
    return None


def _end_backend_at_exit() -> None:
    """Blender is quitting: end the backend this session started (a crash is handled at the next start)."""
    if _session is not None:
        _session.close()


def start() -> None:
    session()
    atexit.register(_end_backend_at_exit)
    if not bpy.app.timers.is_registered(_drain):
        bpy.app.timers.register(_drain, first_interval=TIMER_INTERVAL_SECONDS, persistent=True)
    bpy.app.timers.register(_start_backend_if_wanted, first_interval=TIMER_INTERVAL_SECONDS)


def stop() -> None:
    global _session
    atexit.unregister(_end_backend_at_exit)
    for timer in (_drain, _start_backend_if_wanted):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    if _session is not None:
        _session.close()
        _session = None


def drain_now() -> None:
    """Run the timer's work once (scripts and tests that do not run Blender's event loop)."""
    _drain()
