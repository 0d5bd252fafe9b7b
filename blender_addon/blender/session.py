"""The add-on's running state in this Blender session: the job watcher and board, the backend
subprocess, and the timer that hands background results to the main thread."""

from __future__ import annotations

import atexit
from pathlib import Path

import bpy

from ..core.backend_client import BackendClient, BackendError, read_token
from ..core.backend_process import BackendLaunch, BackendProcess
from ..core.job_requests import follow_up
from ..core.job_watch import JobBoard, JobEvent, JobWatcher
from .all_or_nothing import all_or_nothing
from .preferences import ADDON_PACKAGE, preferences

TIMER_INTERVAL_SECONDS = 0.25


def make_client(context: bpy.types.Context | None = None, timeout: float = 30.0) -> BackendClient:
    prefs = preferences(context)
    token = prefs.token or read_token(prefs.data_dir)
    return BackendClient(prefs.backend_url, token, timeout)


def state_dir() -> Path:
    """Writable folder of the add-on (the extension's user folder when installed as an extension)."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, create=True))
    except ValueError:  # imported from the repository, not installed as an extension
        folder = Path(bpy.utils.user_resource("CONFIG")) / "avatar_foundry"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


class Session:
    STARTUP_GRACE_SECONDS = 120.0
    """How long a job submitted right after starting the backend waits for it to answer."""

    def __init__(self) -> None:
        self.board = JobBoard()
        self.watcher = JobWatcher(make_client)
        self.backend = BackendProcess(state_dir())
        self.health: dict | None = None
        self.models: list[dict] = []
        """The backend's registered models (offered by the model fields of the panels)."""
        self.imported: list[str] = []
        self.rig_name: str | None = None
        self.animation_camera: str | None = None

    def check_health(self, context: bpy.types.Context | None = None) -> dict:
        try:
            self.health = make_client(context, timeout=5.0).health()
        except BackendError:
            self.health = None
            raise
        self.refresh_models(context)
        return self.health

    def refresh_models(self, context: bpy.types.Context | None = None) -> None:
        self.models = make_client(context, timeout=5.0).models()

    def reachable(self, context: bpy.types.Context | None = None) -> bool:
        try:
            self.check_health(context)
        except BackendError:
            return False
        return True

    def start_backend(self, context: bpy.types.Context) -> int:
        prefs = preferences(context)
        launch = BackendLaunch(prefs.backend_python, _port(prefs.backend_url), Path(bpy.path.abspath(prefs.data_dir)),
                               Path(bpy.path.abspath(prefs.backend_source)) if prefs.backend_source else None)
        return self.backend.start(launch)

    def handle(self, event: JobEvent, scene: bpy.types.Scene) -> None:
        """Main thread only: record the event, fill in the next step's reference when a job
        succeeds, import downloaded results."""
        self.board.apply(event)
        if event.kind == "update" and event.job is not None and (step := follow_up(event.job)):
            group, field, reference = step
            setattr(getattr(scene.avatar_foundry, group), field, reference)
        if event.kind == "downloaded" and event.folder is not None:
            from .importers import import_result

            rig = bpy.data.objects.get(self.rig_name) if self.rig_name else None
            camera = bpy.data.objects.get(self.animation_camera) if self.animation_camera else None
            try:
                with all_or_nothing(bpy.context):
                    self.imported.append(import_result(event.folder, event.job, scene, rig, camera))
            except Exception as error:  # an unreadable result must not stop the timer; nothing half-imported stays
                self.board.last_error = f"import of job {event.job['id']} failed: {error}"

    def close(self) -> None:
        self.watcher.stop()
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
    events = _session.watcher.drain()
    for event in events:
        _session.handle(event, bpy.context.scene)
    if events and bpy.context.screen is not None:
        for area in bpy.context.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    return TIMER_INTERVAL_SECONDS


def _start_backend_if_wanted() -> None:
    """One-shot timer after registration: the preferences' "start backend automatically"."""
    if _session is None:
        return None
    try:
        if preferences().auto_start and not _session.backend.running() and not _session.reachable():
            _session.start_backend(bpy.context)
    except (BackendError, OSError) as error:
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
