"""Why a button cannot run right now: each function returns the reason (shown in the greyed
button's tooltip through ``poll_message_set``) or None when it can run. Cheap: no file or network
access, only settings and the session's last known state."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..core.provenance import PREFIX
from .preferences import preferences
from .session import session

NOT_CONNECTED = "Not connected to the backend: press Check or Start in the Backend panel"
NO_RIG = "no rig is selected: pick the Rig in Conditions, or press Add Demo Head"
NO_NPHM_PROXY = "Proxy is Neural head but none is chosen: press Import NPHM Proxy, or set Proxy to Rig"
NO_TARGET = "pick the Target: the detailed character rendered as the image the renderer learns"


def allow(cls, reason: str | None) -> bool:
    """For ``poll``: True when there is no reason, else False with the reason as the tooltip."""
    if reason:
        cls.poll_message_set(reason)
        return False
    return True


def _settings(context: bpy.types.Context):
    return context.scene.avatar_foundry


def backend(context: bpy.types.Context) -> str | None:
    """A job can be sent: the backend answered, or submitting starts it (preference)."""
    if session().health is not None or preferences(context).auto_start:
        return None
    return NOT_CONNECTED


def rig(context: bpy.types.Context) -> str | None:
    if _settings(context).conditions.rig is not None or context.active_object is not None:
        return None
    return NO_RIG


def proxy(context: bpy.types.Context) -> str | None:
    """The Animate section's proxy can be rendered: the rig, or the chosen neural head."""
    animate_settings = _settings(context).animate
    if animate_settings.proxy == "RIG":
        return rig(context)
    return None if animate_settings.nphm_proxy is not None else NO_NPHM_PROXY


def deferred_dataset(context: bpy.types.Context) -> str | None:
    return first(proxy(context), None if _settings(context).deferred.target is not None else NO_TARGET)


def train_neural_head(context: bpy.types.Context) -> str | None:
    return first(backend(context), rig(context))


def fit_neural_head(context: bpy.types.Context) -> str | None:
    animate_settings = _settings(context).animate
    return first(backend(context), rig(context), filled(animate_settings.nphm_model, "Neural head model", "Train Neural Head"),
                 None if animate_settings.frame_end >= animate_settings.frame_start else "End frame is before Start frame")


def first(*reasons: str | None) -> str | None:
    return next((reason for reason in reasons if reason), None)


def filled(value: str, what: str, step: str) -> str | None:
    return None if value.strip() else f"{what} is empty: run {step} first (its job fills it in)"


def multiview(context: bpy.types.Context) -> str | None:
    return first(backend(context), None if _settings(context).conditions.last_bundle else "Render Conditions first")


def train_gan(context: bpy.types.Context) -> str | None:
    return first(backend(context), filled(_settings(context).train.dataset, "Dataset", "Generate Multi-view Images"))


def generate_avatar(context: bpy.types.Context) -> str | None:
    avatar = _settings(context).avatar
    guided = filled(avatar.style_prior, "Style prior", "Train Style Prior") if avatar.image_guided() else None
    return first(backend(context), guided)  # an empty Generator is the backend's embedded default


def train_style_prior(context: bpy.types.Context) -> str | None:
    return first(backend(context), filled(_settings(context).avatar.checkpoint, "Generator", "Train 3D GAN"))


def train_renderer(context: bpy.types.Context) -> str | None:
    return first(backend(context), None if _settings(context).deferred.last_bundle else "Render Deferred Dataset first")


def animate(context: bpy.types.Context) -> str | None:
    animate_settings = _settings(context).animate
    renderer = None if animate_settings.proxy == "RIG" else filled(animate_settings.checkpoint, "Renderer", "Train Renderer")
    return first(backend(context), proxy(context), renderer,  # with the rig, an empty Renderer is the backend's embedded default
                 None if animate_settings.camera is not None else "pick the Camera the animation is rendered from")


def preview_conditions(context: bpy.types.Context) -> str | None:
    return None if _settings(context).conditions.last_bundle else "Render Conditions first"


def models_folder(context: bpy.types.Context) -> str | None:
    if session().scanning:
        return "the models folder is being registered"
    return first(None if session().health is not None else NOT_CONNECTED,
                 None if preferences(context).models_dir.strip() else "set Models folder in the add-on preferences")


def connected(context: bpy.types.Context) -> str | None:
    return None if session().health is not None else NOT_CONNECTED


def vary_seed(context: bpy.types.Context) -> str | None:
    obj = context.active_object
    if obj is None or PREFIX + "kind" not in obj:
        return "select an avatar imported from a job (it carries the job's settings)"
    return backend(context)


def object_mode(context: bpy.types.Context) -> str | None:
    return None if context.mode == "OBJECT" else "switch to Object Mode first"


def backend_url(context: bpy.types.Context) -> str | None:
    return None if preferences(context).backend_url.strip() else "set Backend URL in the add-on preferences"


def backend_startable(context: bpy.types.Context) -> str | None:
    """Start is refused only while Install Backend works; a Python without the backend is Start's own
    error to explain (it names the fix from the backend's log)."""
    return "Install Backend is still running: Start follows it by itself" if session().install_task.running() else None


def own_backend(context: bpy.types.Context) -> str | None:
    return None if session().backend.running() else "this Blender session started no backend"


def results(folder: Path) -> str | None:
    return None if folder.is_dir() else f"no job results have been downloaded yet (they go to {folder})"
