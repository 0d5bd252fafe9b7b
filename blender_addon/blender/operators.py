"""Operators of the Avatar sidebar. Thin: they read settings, call the cores, and report errors
with their message and hint (never a traceback). Long work never blocks Blender: rendering steps
one view per timer tick, backend jobs run in background threads (``session``).

The steps chain as the artist works: Render Conditions -> Generate Multi-view Images -> Train 3D
GAN -> Generate Avatar (-> Train Style Prior for image-guided avatars); Render Deferred Dataset ->
Train Renderer -> Animate. Each finished job fills in the reference the next step needs.
"""

from __future__ import annotations

import json
import random
import shutil
from functools import partial
from pathlib import Path
from typing import Callable

import bpy

from ..core.backend_client import BackendError
from ..core.bundle_zip import zip_bundle, zip_folder
from ..core.demo_appearance import AppearanceParams, sample_appearance
from ..core.demo_head_shape import IdentityParams, sample_identity
from ..core.job_requests import reference_image_upload
from ..core.provenance import PREFIX, request_from_properties
from ..core.view_plan import plan_orbit_views
from ..formats.errors import FormatError
from . import readiness
from . import rig as rig_data
from .condition_render import NOTICE_PREFIX, BundleRequest, render_bundle, view_from_camera
from .importers import load_condition_previews
from .landmark_finder import find_landmarks
from .demo_head import add_demo_head
from .head_mesh_export import export_frames, export_random_expressions
from .output_folders import resolve_folder, results_folder
from .preferences import preferences
from .proxy_import import AVATAR_OT_import_nphm_proxy
from .proxy_render import find_proxy, proxy_head_frame
from .session import make_client, scan_request, session
from .task_operator import BackgroundTaskOperator
from .viewport import frame_in_viewports

USER_ERRORS = (FormatError, BackendError, OSError)


def _message(error: Exception) -> str:
    if isinstance(error, FormatError):
        return f"{error.field}: {error.message}" + (f" ({error.hint})" if error.hint else "")
    return str(error)


def _settings(context: bpy.types.Context):
    return context.scene.avatar_foundry


def _rig(context: bpy.types.Context) -> bpy.types.Object:
    conditions = _settings(context).conditions
    return rig_data.find_rig(conditions.rig.name if conditions.rig else None, context.active_object)


def submit(context: bpy.types.Context, kind: str, params: dict, upload: bytes | Callable[[], bytes] | None = None) -> None:
    """Queue a job in the background (starting the backend first where the preferences say so, if
    it does not answer); its results are downloaded and imported when it succeeds. Nothing here
    waits for the backend: the Jobs panel shows the job as "submitting" until it is accepted."""
    state = session()
    state.rig_name = _rig_name(context)
    starter = None
    if preferences(context).auto_start and not state.backend.running():
        starter = partial(state.backend.start, state.launch(context))
    state.watcher.submit(kind, params, upload, download_to=results_folder(context),
                         startup_grace=state.STARTUP_GRACE_SECONDS, start_backend=starter)


SENT = "sending the {} job to the backend (see Jobs)"


def _rig_name(context: bpy.types.Context) -> str | None:
    rig = _settings(context).conditions.rig
    return rig.name if rig else None


def _bundle_upload(folder: str, what: str, step: str) -> Callable[[], bytes]:
    if not folder:
        raise FormatError(what, "has not been rendered yet", f"press {step} first")
    return partial(zip_bundle, bpy.path.abspath(folder))


class AVATAR_OT_add_demo_head(bpy.types.Operator):
    """Add the procedural rigged demo head (identity and look from the seed)"""

    bl_idname = "avatar_foundry.add_demo_head"
    bl_label = "Add Demo Head"
    bl_options = {"REGISTER", "UNDO"}

    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    randomize: bpy.props.BoolProperty(name="Random identity", default=False)

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.object_mode(context))

    def execute(self, context):
        varied = self.randomize or self.seed != 0
        identity = sample_identity(self.seed) if varied else IdentityParams()
        look = sample_appearance(self.seed) if varied else AppearanceParams()
        rig = add_demo_head(context, identity, look)
        _settings(context).conditions.rig = rig
        frame_in_viewports(context, [rig, *rig.children_recursive])
        self.report({"INFO"}, f"added demo head {rig.name!r}")
        return {"FINISHED"}


class AVATAR_OT_find_landmarks(bpy.types.Operator):
    """Add landmark:<name> vertex groups the rig lacks, from its bones, eye meshes, face shape keys and head shape (existing groups are kept)"""

    bl_idname = "avatar_foundry.find_landmarks"
    bl_label = "Find Landmarks"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.rig(context))

    def execute(self, context):
        try:
            report = find_landmarks(_rig(context), context.evaluated_depsgraph_get())
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        for message in report.messages():
            self.report({"WARNING"}, message)
        found = ", ".join(f"{name} ({how})" for name, how in report.found.items()) or "none"
        self.report({"INFO"}, f"found landmarks: {found}; kept {len(report.kept)} existing" + (f"; {report.facing}" if report.facing else ""))
        return {"FINISHED"}


class _SteppedRender:
    """Renders a condition bundle one view per step: run to the end by ``execute`` (scripts), or
    from a timer by ``invoke`` (the UI stays responsive; Esc cancels). Subclasses say what to
    render (``_request``) and what to do with the finished bundle (``_done``)."""

    def _request(self, context) -> BundleRequest:
        raise NotImplementedError

    def _done(self, context, folder: Path) -> None:
        raise NotImplementedError

    def _begin(self, context) -> bool:
        try:
            request = self._request(context)
            self._steps = render_bundle(request, context.scene)
            self._folder = request.output_dir
            self._finished = False
            return True
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return False

    def _step(self, context) -> bool:
        """Render one view; False when done or failed."""
        conditions = _settings(context).conditions
        try:
            conditions.progress, conditions.stage = next(self._steps)
            if conditions.stage.startswith(NOTICE_PREFIX):
                self.report({"WARNING"}, conditions.stage[len(NOTICE_PREFIX):])
            return True
        except StopIteration:
            pass
        except USER_ERRORS as error:
            conditions.stage = _message(error)
            self.report({"ERROR"}, _message(error))
            return False
        try:
            self._done(context, self._folder)
            self._finished = True
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
        return False

    def execute(self, context):
        if not self._begin(context):
            return {"CANCELLED"}
        while self._step(context):
            pass
        return {"FINISHED"} if self._finished else {"CANCELLED"}

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
        return {"FINISHED"} if self._finished else {"CANCELLED"}

    def _finish(self, context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        self._steps.close()


class _OrbitRender(_SteppedRender):
    """The orbit cameras' bundle: a rig's conditions, or (``deferred``) a deferred dataset of the Animate
    section's proxy (the rig over random expressions, or every frame of a neural head) with the target."""

    deferred = False

    def _request(self, context) -> BundleRequest:
        settings = _settings(context)
        conditions, deferred = settings.conditions, settings.deferred
        proxy = settings.animate.proxy_name() if self.deferred else ""
        size = conditions.resolution
        if self.deferred and deferred.target is None:
            raise FormatError("target", "a deferred dataset needs a target object", "pick the detailed character as Target")
        use_frames = conditions.use_frame_range and not self.deferred
        return BundleRequest(
            rig="" if proxy else _rig(context).name,
            output_dir=resolve_folder(deferred.output_dir if self.deferred else conditions.output_dir, context),
            views=plan_orbit_views(conditions.orbit(), size, size), width=size, height=size,
            frames=list(range(context.scene.frame_start, context.scene.frame_end + 1)) if use_frames else [],
            target=deferred.target.name if self.deferred else None,
            random_expressions=deferred.random_expressions if self.deferred and not proxy else 0,
            seed=conditions.seed, proxy=proxy,
        )

    def _done(self, context, folder: Path) -> None:
        settings = _settings(context)
        (settings.deferred if self.deferred else settings.conditions).last_bundle = str(folder)
        self.report({"INFO"}, f"{'deferred dataset' if self.deferred else 'condition bundle'} written to {folder}")


class AVATAR_OT_render_conditions(_OrbitRender, bpy.types.Operator):
    """Render pose, depth, normal, canonical and mask passes of the rig from the orbit cameras"""

    bl_idname = "avatar_foundry.render_conditions"
    bl_label = "Render Conditions"

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.rig(context))


class AVATAR_OT_render_deferred_dataset(_OrbitRender, bpy.types.Operator):
    """Render the proxy's passes with the target character from the orbit cameras: the rig over random expressions, or every frame of the neural head"""

    bl_idname = "avatar_foundry.render_deferred_dataset"
    bl_label = "Render Deferred Dataset"
    deferred = True

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.deferred_dataset(context))


class AVATAR_OT_animate(_SteppedRender, bpy.types.Operator):
    """Render per-frame conditions from the chosen camera over the frame range, then submit an animate job"""

    bl_idname = "avatar_foundry.animate"
    bl_label = "Animate"

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.animate(context))

    def _request(self, context) -> BundleRequest:
        animate, conditions = _settings(context).animate, _settings(context).conditions
        animate.params()
        if animate.camera is None:
            raise FormatError("camera", "no camera chosen", "pick the camera the animation is rendered from")
        if animate.frame_end < animate.frame_start:
            raise FormatError("frame_end", "ends before the start frame", "set End to Start or later")
        proxy = animate.proxy_name()
        rig = None if proxy else _rig(context)
        head = proxy_head_frame(find_proxy(proxy)) if proxy else rig_data.head_frame(rig)
        size = conditions.resolution
        view = view_from_camera(animate.camera, head, size, size)
        folder = resolve_folder(animate.output_dir, context) / "conditions"
        return BundleRequest(rig.name if rig else "", folder, [view], size, size, list(range(animate.frame_start, animate.frame_end + 1)),
                             proxy=proxy)

    def _done(self, context, folder: Path) -> None:
        animate = _settings(context).animate
        session().animation_camera = animate.camera.name
        submit(context, "animate", animate.params(), partial(zip_bundle, folder))
        self.report({"INFO"}, SENT.format("animate"))


class AVATAR_OT_preview_conditions(bpy.types.Operator):
    """Load the last bundle's pose skeletons and masks as images, to look at in the Image Editor"""

    bl_idname = "avatar_foundry.preview_conditions"
    bl_label = "Preview Conditions"

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.preview_conditions(context))

    def execute(self, context):
        folder = _settings(context).conditions.last_bundle
        try:
            if not folder:
                raise FormatError("conditions", "no condition bundle has been rendered yet", "press Render Conditions first")
            images = load_condition_previews(Path(bpy.path.abspath(folder)))
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        for area in context.screen.areas if context.screen else ():
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = images[0]
        self.report({"INFO"}, f"loaded {len(images)} condition images (conditions_<view>_<pass>)")
        return {"FINISHED"}


class AVATAR_OT_backend_check(bpy.types.Operator):
    """Connect to the backend and show its device, version and models"""

    bl_idname = "avatar_foundry.backend_check"
    bl_label = "Check Backend"

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.backend_url(context))

    def execute(self, context):
        try:
            health = session().check_health(context)
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"backend {health.get('version')} on {health.get('device_name')}; {len(session().models)} model(s)")
        return {"FINISHED"}

    def invoke(self, context, event):
        """The button: ask in the background (the panel shows the answer), never freeze Blender."""
        session().check_in_background()
        return {"FINISHED"}


class AVATAR_OT_backend_start(BackgroundTaskOperator, bpy.types.Operator):
    """Start the backend as a subprocess and wait until it answers (ends a leftover one from an earlier session first)"""

    bl_idname = "avatar_foundry.backend_start"
    bl_label = "Start Backend"
    failure_prefix = "could not start the backend: "
    started_message = "starting the backend: the Backend panel shows when it answers"

    restart: bpy.props.BoolProperty(name="Restart", default=False)

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.backend_startable(context))

    def _begin(self, context):
        if self.restart:
            session().backend.stop_in_background()
            session().health = None
        return session().start_backend_and_wait(context)


class AVATAR_OT_backend_stop(bpy.types.Operator):
    """Stop the backend this session started"""

    bl_idname = "avatar_foundry.backend_stop"
    bl_label = "Stop Backend"

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.own_backend(context))

    def execute(self, context):
        """Returns at once; the process is ended in the background (SIGTERM, then SIGKILL)."""
        session().start_task.cancel()
        session().backend.stop_in_background()
        session().health = None
        self.report({"INFO"}, "backend stopping")
        return {"FINISHED"}


class AVATAR_OT_free_memory(bpy.types.Operator):
    """Ask the backend to unload its models (frees GPU memory)"""

    bl_idname = "avatar_foundry.free_memory"
    bl_label = "Free Memory"

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.connected(context))

    def execute(self, context):
        session().unload_in_background()
        self.report({"INFO"}, "asking the backend to unload its models")
        return {"FINISHED"}


class AVATAR_OT_register_models(bpy.types.Operator):
    """Register every Stable Diffusion model, ControlNet and LoRA in the preferences' models folder with the backend"""

    bl_idname = "avatar_foundry.register_models"
    bl_label = "Register Models Folder"

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.models_folder(context))

    def execute(self, context):
        """Scripts: register and wait for the answer (the skips are listed in the Backend panel too)."""
        state = session()
        try:
            report = scan_request(str(resolve_folder(preferences(context).models_dir, context)))(make_client(context))
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        state.models_report, state.models = report["report"], report["models"]
        for skipped in state.models_report["skipped"]:
            self.report({"WARNING"}, f"skipped {Path(skipped['path']).name}: {skipped['reason']}")
        self.report({"INFO"}, f"registered {len(state.models_report['added'])} model(s); {len(state.models_report['skipped'])} skipped")
        return {"FINISHED"}

    def invoke(self, context, event):
        """The button: scan in the background (a large folder takes seconds); the panel shows the outcome."""
        session().scan_in_background(str(resolve_folder(preferences(context).models_dir, context)))
        return {"FINISHED"}


class _SubmitOperator:
    """An operator that submits one job kind from its panel's settings."""

    kind = ""
    why_not: Callable[[bpy.types.Context], str | None] = staticmethod(readiness.backend)
    """The reason the button is greyed (None: it can run)."""

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, cls.why_not(context))

    def request(self, context) -> tuple[dict, bytes | Callable[[], bytes] | None]:
        raise NotImplementedError

    def execute(self, context):
        try:
            params, upload = self.request(context)
            submit(context, self.kind, params, upload)
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        self.report({"INFO"}, SENT.format(self.kind))
        return {"FINISHED"}


class AVATAR_OT_generate_multiview(_SubmitOperator, bpy.types.Operator):
    """Paint stylized multi-view images of the rendered conditions with Stable Diffusion + ControlNet"""

    bl_idname = "avatar_foundry.generate_multiview"
    bl_label = "Generate Multi-view Images"
    kind = "multiview"
    why_not = staticmethod(readiness.multiview)

    def request(self, context):
        settings = _settings(context)
        return settings.generate.params(), _bundle_upload(settings.conditions.last_bundle, "conditions", "Render Conditions")


class AVATAR_OT_train_gan(_SubmitOperator, bpy.types.Operator):
    """Train the tri-plane 3D GAN on the multi-view images"""

    bl_idname = "avatar_foundry.train_gan"
    bl_label = "Train 3D GAN"
    kind = "train-eg3d"
    why_not = staticmethod(readiness.train_gan)

    def request(self, context):
        return _settings(context).train.params(), None


class AVATAR_OT_generate_avatar(_SubmitOperator, bpy.types.Operator):
    """Generate a textured avatar mesh from the generator (from the seed, or resembling the reference image) and import it"""

    bl_idname = "avatar_foundry.generate_avatar"
    bl_label = "Generate Avatar"
    kind = "generate-avatar"
    why_not = staticmethod(readiness.generate_avatar)

    def request(self, context):
        avatar = _settings(context).avatar
        if not avatar.image_guided():
            return avatar.params(), None
        upload, name = reference_image_upload(bpy.path.abspath(avatar.reference_image))
        return avatar.params(reference_name=name), upload


class AVATAR_OT_train_style_prior(_SubmitOperator, bpy.types.Operator):
    """Train the style prior that turns a reference image into the generator's style code"""

    bl_idname = "avatar_foundry.train_style_prior"
    bl_label = "Train Style Prior"
    kind = "train-style-prior"
    why_not = staticmethod(readiness.train_style_prior)

    def request(self, context):
        return _settings(context).avatar.style_prior_params(), None


class AVATAR_OT_train_renderer(_SubmitOperator, bpy.types.Operator):
    """Train the deferred neural renderer on the rendered deferred dataset"""

    bl_idname = "avatar_foundry.train_renderer"
    bl_label = "Train Renderer"
    kind = "train-deferred"
    why_not = staticmethod(readiness.train_renderer)

    def request(self, context):
        settings = _settings(context)
        upload = _bundle_upload(settings.deferred.last_bundle, "deferred dataset", "Render Deferred Dataset")
        return settings.deferred.params(settings.conditions.resolution), upload


def _fresh_folder(context, *parts: str) -> Path:
    """An empty folder under the Animate output folder (what an earlier export left there is removed)."""
    folder = resolve_folder(_settings(context).animate.output_dir, context).joinpath(*parts)
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "head"


class AVATAR_OT_train_neural_head(_SubmitOperator, bpy.types.Operator):
    """Train a neural parametric head (NPHM) on the rig's head: its neutral and random expressions, exported as meshes with exact correspondences"""

    bl_idname = "avatar_foundry.train_neural_head"
    bl_label = "Train Neural Head"
    kind = "train-nphm"
    why_not = staticmethod(readiness.train_neural_head)

    def request(self, context):
        settings = _settings(context)
        rig = _rig(context)
        heads = _fresh_folder(context, "neural_head", "heads")
        for _ in export_random_expressions(rig.name, heads / _safe_name(rig.name), settings.animate.nphm_expressions, settings.conditions.seed):
            pass
        return settings.animate.train_nphm_params(), partial(zip_folder, heads)


class AVATAR_OT_fit_neural_head(_SubmitOperator, bpy.types.Operator):
    """Fit the neural head to the rig's animation frame by frame (Start to End frame); its proxy meshes come back as the Neural head proxy"""

    bl_idname = "avatar_foundry.fit_neural_head"
    bl_label = "Fit Neural Head"
    kind = "fit-nphm"
    why_not = staticmethod(readiness.fit_neural_head)

    def request(self, context):
        animate = _settings(context).animate
        params = animate.fit_nphm_params()
        frames = _fresh_folder(context, "neural_head", "frames")
        for _ in export_frames(_rig(context).name, frames, range(animate.frame_start, animate.frame_end + 1)):
            pass
        return params, partial(zip_folder, frames)


class AVATAR_OT_submit_job(bpy.types.Operator):
    """Send any job kind with params as JSON (for kinds without a panel, e.g. echo-conditions)"""

    bl_idname = "avatar_foundry.submit_job"
    bl_label = "Submit Job"

    kind: bpy.props.StringProperty(name="Kind", default="echo-conditions")
    params_json: bpy.props.StringProperty(name="Params (JSON)", default="{}")
    with_bundle: bpy.props.BoolProperty(name="Upload last condition bundle", default=True)

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.backend(context))

    def execute(self, context):
        try:
            params = json.loads(self.params_json or "{}")
            upload = _bundle_upload(_settings(context).conditions.last_bundle, "conditions", "Render Conditions") if self.with_bundle else None
            submit(context, self.kind, params, upload)
        except json.JSONDecodeError as error:
            self.report({"ERROR"}, f"params: not valid JSON ({error})")
            return {"CANCELLED"}
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        self.report({"INFO"}, SENT.format(self.kind))
        return {"FINISHED"}


class AVATAR_OT_cancel_job(bpy.types.Operator):
    """Cancel a queued or running job"""

    bl_idname = "avatar_foundry.cancel_job"
    bl_label = "Cancel Job"

    job_id: bpy.props.StringProperty()

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.connected(context))

    def execute(self, context):
        session().watcher.cancel(self.job_id)
        return {"FINISHED"}


class AVATAR_OT_open_results(bpy.types.Operator):
    """Open the folder holding a job's downloaded results"""

    bl_idname = "avatar_foundry.open_results"
    bl_label = "Open Results"

    job_id: bpy.props.StringProperty()

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.results(results_folder(context)))

    def execute(self, context):
        folder = results_folder(context) / self.job_id
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

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.vary_seed(context))

    def execute(self, context):
        obj = context.active_object
        if obj is None or PREFIX + "kind" not in obj:
            self.report({"ERROR"}, "the active object was not imported from a backend job (it has no provenance)")
            return {"CANCELLED"}
        kind, params = request_from_properties(dict(obj.items()), random.randrange(2**31) if self.new_seed else None)
        try:
            submit(context, kind, params, self._reference_again(obj, params))
        except USER_ERRORS as error:
            self.report({"ERROR"}, _message(error))
            return {"CANCELLED"}
        self.report({"INFO"}, SENT.format(kind) + f" with seed {params.get('seed')}")
        return {"FINISHED"}

    @staticmethod
    def _reference_again(obj: bpy.types.Object, params: dict) -> bytes | None:
        """An image-guided avatar's reference image, uploaded again from its downloaded results."""
        if not params.get("style_prior"):
            return None
        folder = Path(obj.get(PREFIX + "result_folder", ""))
        upload, params["reference_image"] = reference_image_upload(folder / "reference.png")
        return upload


CLASSES = (AVATAR_OT_add_demo_head, AVATAR_OT_find_landmarks, AVATAR_OT_render_conditions, AVATAR_OT_render_deferred_dataset,
           AVATAR_OT_preview_conditions, AVATAR_OT_animate, AVATAR_OT_backend_check,
           AVATAR_OT_backend_start, AVATAR_OT_backend_stop, AVATAR_OT_free_memory, AVATAR_OT_register_models,
           AVATAR_OT_generate_multiview, AVATAR_OT_train_gan, AVATAR_OT_generate_avatar, AVATAR_OT_train_style_prior,
           AVATAR_OT_train_renderer, AVATAR_OT_train_neural_head, AVATAR_OT_fit_neural_head, AVATAR_OT_submit_job,
           AVATAR_OT_cancel_job, AVATAR_OT_open_results, AVATAR_OT_vary_seed, AVATAR_OT_import_nphm_proxy)
