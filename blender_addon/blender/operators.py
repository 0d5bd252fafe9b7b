"""Operators of the Avatar sidebar. Thin: they read settings, call the cores, and report errors
with their message and hint (never a traceback). Long work never blocks Blender: rendering steps
one view per timer tick, backend jobs run in background threads (``session``)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import bpy

from ..core.backend_client import BackendError
from ..core.bundle_zip import zip_bundle
from ..core.demo_appearance import AppearanceParams, sample_appearance
from ..core.demo_head_shape import IdentityParams, sample_identity
from ..core.provenance import PREFIX, request_from_properties
from ..core.view_plan import plan_orbit_views
from ..formats.errors import FormatError
from . import rig as rig_data
from .condition_render import BundleRequest, render_bundle, view_from_camera
from .demo_head import add_demo_head
from .preferences import preferences
from .session import session

USER_ERRORS = (FormatError, BackendError, OSError)


def _message(error: Exception) -> str:
    if isinstance(error, FormatError):
        return f"{error.field}: {error.message}" + (f" ({error.hint})" if error.hint else "")
    return str(error)


def _settings(context: bpy.types.Context):
    return context.scene.avatar_foundry


class AVATAR_OT_add_demo_head(bpy.types.Operator):
    """Add the procedural rigged demo head (identity and look from the seed)"""

    bl_idname = "avatar_foundry.add_demo_head"
    bl_label = "Add Demo Head"
    bl_options = {"REGISTER", "UNDO"}

    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    randomize: bpy.props.BoolProperty(name="Random identity", default=False)

    def execute(self, context):
        varied = self.randomize or self.seed != 0
        identity = sample_identity(self.seed) if varied else IdentityParams()
        look = sample_appearance(self.seed) if varied else AppearanceParams()
        rig = add_demo_head(context, identity, look)
        _settings(context).conditions.rig = rig
        self.report({"INFO"}, f"added demo head {rig.name!r}")
        return {"FINISHED"}


def _bundle_request(context: bpy.types.Context, deferred: bool, output: Path | None = None) -> BundleRequest:
    conditions = _settings(context).conditions
    rig = rig_data.find_rig(conditions.rig.name if conditions.rig else None, context.active_object)
    size = conditions.resolution
    scene = context.scene
    return BundleRequest(
        rig=rig.name,
        output_dir=output or Path(bpy.path.abspath(conditions.output_dir)),
        views=plan_orbit_views(conditions.orbit(), size, size),
        width=size, height=size,
        frames=list(range(scene.frame_start, scene.frame_end + 1)) if conditions.use_frame_range and not deferred else [],
        target=(conditions.target.name if conditions.target else None) if deferred else None,
        random_expressions=conditions.random_expressions if deferred else 0,
        seed=conditions.seed,
    )


class AVATAR_OT_render_conditions(bpy.types.Operator):
    """Render pose, depth, normal, canonical and mask passes of the rig from the orbit cameras"""

    bl_idname = "avatar_foundry.render_conditions"
    bl_label = "Render Conditions"

    deferred: bpy.props.BoolProperty(name="Deferred dataset", description="Also render the target over random expressions")

    def _begin(self, context) -> bool:
        try:
            request = _bundle_request(context, self.deferred)
            if self.deferred and not request.target:
                raise FormatError("target", "a deferred dataset needs a target object", "pick the detailed character as Target")
            self._steps = render_bundle(request, context.scene)
            self._folder = request.output_dir
            return True
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return False

    def _step(self, context) -> bool:
        """Render one view; False when done or failed."""
        conditions = _settings(context).conditions
        try:
            conditions.progress, conditions.stage = next(self._steps)
            return True
        except StopIteration:
            conditions.last_bundle = str(self._folder)
            self.report({"INFO"}, f"condition bundle written to {self._folder}")
            return False
        except USER_ERRORS as error:
            conditions.stage = _message(error)
            self.report({"ERROR"}, _message(error))
            return False

    def execute(self, context):
        if not self._begin(context):
            return {"CANCELLED"}
        while self._step(context):
            pass
        return {"FINISHED"} if _settings(context).conditions.last_bundle == str(self._folder) else {"CANCELLED"}

    def invoke(self, context, event):
        if not self._begin(context):
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(0.01, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._finish(context)
            _settings(context).conditions.stage = "cancelled"
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        running = self._step(context)
        if context.area:
            context.area.tag_redraw()
        if running:
            return {"RUNNING_MODAL"}
        self._finish(context)
        return {"FINISHED"}

    def _finish(self, context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        self._steps.close()


class AVATAR_OT_backend_check(bpy.types.Operator):
    """Connect to the backend and show its device and version"""

    bl_idname = "avatar_foundry.backend_check"
    bl_label = "Check Backend"

    def execute(self, context):
        try:
            health = session().check_health(context)
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"backend {health.get('version')} on {health.get('device_name')}")
        return {"FINISHED"}


class AVATAR_OT_backend_start(bpy.types.Operator):
    """Start the backend as a subprocess (ends a leftover one from an earlier session first)"""

    bl_idname = "avatar_foundry.backend_start"
    bl_label = "Start Backend"

    restart: bpy.props.BoolProperty(name="Restart", default=False)

    def execute(self, context):
        try:
            if self.restart:
                session().backend.stop()
            pid = session().start_backend(context)
        except USER_ERRORS as error:
            self.report({"ERROR"}, f"could not start the backend: {_message(error)}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"backend started (pid {pid}); it is ready when Check Backend answers")
        return {"FINISHED"}


class AVATAR_OT_backend_stop(bpy.types.Operator):
    """Stop the backend this session started"""

    bl_idname = "avatar_foundry.backend_stop"
    bl_label = "Stop Backend"

    def execute(self, context):
        session().backend.stop()
        session().health = None
        return {"FINISHED"}


class AVATAR_OT_free_memory(bpy.types.Operator):
    """Ask the backend to unload its models (frees GPU memory)"""

    bl_idname = "avatar_foundry.free_memory"
    bl_label = "Free Memory"

    def execute(self, context):
        from .session import make_client

        try:
            count = make_client(context).unload()
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"unloaded {count} model(s)")
        return {"FINISHED"}


def submit(context: bpy.types.Context, kind: str, params: dict, bundle_folder: str | None = None) -> None:
    """Queue a job in the background; its results are imported when it succeeds."""
    bundle = zip_bundle(bpy.path.abspath(bundle_folder)) if bundle_folder else None
    state = session()
    conditions = _settings(context).conditions
    state.rig_name = conditions.rig.name if conditions.rig else None
    state.watcher.submit(kind, params, bundle, download_to=Path(bpy.path.abspath(preferences(context).output_dir)))


class AVATAR_OT_submit_job(bpy.types.Operator):
    """Send a job to the backend; progress shows in the Jobs panel and results are imported"""

    bl_idname = "avatar_foundry.submit_job"
    bl_label = "Submit Job"

    kind: bpy.props.StringProperty(name="Kind", default="echo-conditions")
    params_json: bpy.props.StringProperty(name="Params (JSON)", default="")
    with_bundle: bpy.props.BoolProperty(name="Upload last condition bundle", default=True)

    def execute(self, context):
        settings = _settings(context)
        panel_params = {"multiview": settings.generate.params, "generate-avatar": settings.avatar.params}
        try:
            params = json.loads(self.params_json) if self.params_json else panel_params.get(self.kind, dict)()
            folder = settings.conditions.last_bundle if self.with_bundle else None
            if self.with_bundle and not folder:
                raise FormatError("conditions", "no condition bundle has been rendered yet", "press Render Conditions first")
            submit(context, self.kind, params, folder)
        except json.JSONDecodeError as error:
            self.report({"ERROR"}, f"params: not valid JSON ({error})")
            return {"CANCELLED"}
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{self.kind} job submitted")
        return {"FINISHED"}


class AVATAR_OT_animate(bpy.types.Operator):
    """Render per-frame conditions from the chosen camera over the frame range, then submit an animate job"""

    bl_idname = "avatar_foundry.animate"
    bl_label = "Animate"

    def execute(self, context):
        settings = _settings(context)
        animate, conditions = settings.animate, settings.conditions
        try:
            if animate.camera is None:
                raise FormatError("camera", "no camera chosen", "pick the camera the animation is rendered from")
            rig = rig_data.find_rig(conditions.rig.name if conditions.rig else None, context.active_object)
            size = conditions.resolution
            folder = Path(bpy.path.abspath(animate.output_dir)) / "conditions"
            view = view_from_camera(animate.camera, rig_data.head_frame(rig), size, size)
            request = BundleRequest(rig.name, folder, [view], size, size, list(range(animate.frame_start, animate.frame_end + 1)))
            for _ in render_bundle(request, context.scene):
                pass
            submit(context, "animate", {"checkpoint": animate.checkpoint}, str(folder))
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        self.report({"INFO"}, "animate job submitted")
        return {"FINISHED"}


class AVATAR_OT_cancel_job(bpy.types.Operator):
    """Cancel a queued or running job"""

    bl_idname = "avatar_foundry.cancel_job"
    bl_label = "Cancel Job"

    job_id: bpy.props.StringProperty()

    def execute(self, context):
        session().watcher.cancel(self.job_id)
        return {"FINISHED"}


class AVATAR_OT_open_results(bpy.types.Operator):
    """Open the folder holding a job's downloaded results"""

    bl_idname = "avatar_foundry.open_results"
    bl_label = "Open Results"

    job_id: bpy.props.StringProperty()

    def execute(self, context):
        folder = Path(bpy.path.abspath(preferences(context).output_dir)) / self.job_id
        if not folder.is_dir():
            self.report({"ERROR"}, f"no downloaded results for job {self.job_id} in {folder}")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=str(folder))
        return {"FINISHED"}


class AVATAR_OT_vary_seed(bpy.types.Operator):
    """Submit the job that made the active object again (same seed: Regenerate; new seed: Vary)"""

    bl_idname = "avatar_foundry.vary_seed"
    bl_label = "Vary Seed"

    new_seed: bpy.props.BoolProperty(name="New seed", default=True)

    def execute(self, context):
        obj = context.active_object
        if obj is None or PREFIX + "kind" not in obj:
            self.report({"ERROR"}, "the active object was not imported from a backend job (it has no provenance)")
            return {"CANCELLED"}
        kind, params = request_from_properties(dict(obj.items()), random.randrange(2**31) if self.new_seed else None)
        try:
            submit(context, kind, params)
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (AVATAR_OT_add_demo_head, AVATAR_OT_render_conditions, AVATAR_OT_backend_check, AVATAR_OT_backend_start,
           AVATAR_OT_backend_stop, AVATAR_OT_free_memory, AVATAR_OT_submit_job, AVATAR_OT_animate,
           AVATAR_OT_cancel_job, AVATAR_OT_open_results, AVATAR_OT_vary_seed)
