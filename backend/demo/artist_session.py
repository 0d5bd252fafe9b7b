"""The demo's Blender half: what an artist does in the Avatar sidebar, step by step, headless.

Run inside Blender's Python (the ``bpy`` module, or ``blender -b --python artist_session.py -- PLAN``)
with a plan written by ``backend.demo.pipeline``. It imports only bpy and the add-on, installed from
its zip like a user installs it, and presses the add-on's own buttons (operators): start the backend,
register the models folder, add the demo head, render conditions, paint multi-view images, train the
3D GAN, generate and import an avatar (seeded, then image-guided through a style prior), render a
animate the rig through the embedded default renderer, render a deferred dataset, train the neural
renderer, animate the rig through it and import the baked frames; then the same
through a neural head (NPHM) trained on the demo head's own expressions and fitted to its animation. Every step
waits on the job board the Jobs panel draws, printing stage, progress and ETA as they change.

The result is ``demo.blend`` and ``summary.json`` in the plan's output folder.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
from pathlib import Path

import bpy
from mathutils import Matrix, Vector

ADDON = "bl_ext.user_default.avatar_foundry"
FINAL_STATES = ("succeeded", "failed", "cancelled")


class DemoFailed(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def install_addon(zip_path: str) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    if result != {"FINISHED"} or ADDON not in bpy.context.preferences.addons:
        raise DemoFailed(f"the add-on {zip_path} did not install: {result}")


def addon_module(name: str):
    return importlib.import_module(f"{ADDON}.{name}")


def session():
    return addon_module("blender.session").session()


def settings():
    return bpy.context.scene.avatar_foundry


def wait_for_backend(timeout: float) -> None:
    """Until the backend that Start launched answers (it imports torch first), then Check Backend."""
    deadline = time.monotonic() + timeout
    while not session().reachable(bpy.context):
        if time.monotonic() > deadline or not session().backend.running():
            raise DemoFailed(f"the backend did not come up in {timeout:.0f} s; see its log in the data folder")
        time.sleep(0.5)
    bpy.ops.avatar_foundry.backend_check()


def run_job(operator, timeout: float, **properties) -> dict:
    """Press a submitting button, follow its job on the board until it ends and its results are imported."""
    state = session()
    known, imported, error = set(state.board.jobs), len(state.imported), state.board.last_error
    operator(**properties)
    deadline, shown = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        addon_module("blender.session").drain_now()
        if state.board.last_error != error and not set(state.board.jobs) - known:
            raise DemoFailed(state.board.last_error)
        new = [job for job_id, job in state.board.jobs.items() if job_id not in known]
        if new:
            job = new[0]
            line = _progress_line(job)
            if line != shown:
                say(f"  {line}")
                shown = line
            if job["state"] in ("failed", "cancelled", "not submitted"):
                raise DemoFailed(f"{job['kind']} {job['state']}: {state.board.last_error}")
            if job["state"] == "succeeded" and len(state.imported) > imported:
                say(f"  {state.imported[-1]}")
                return job
        time.sleep(0.2)
    raise DemoFailed(f"no result within {timeout:.0f} s")


def _progress_line(job: dict) -> str:
    eta = job.get("eta_seconds")
    return (f"{job['kind']} {job['id'][:8]}: {job['state']} {100 * float(job.get('progress') or 0):3.0f}% "
            f"{job.get('stage') or ''}" + (f" (ETA {eta:.0f} s)" if eta is not None and job["state"] == "running" else ""))


def configure_preferences(plan: dict) -> None:
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.backend_url = plan["backend_url"]
    prefs.data_dir = plan["data_dir"]
    prefs.backend_python = plan["backend_python"]
    prefs.backend_source = plan["repository"]
    prefs.models_dir = plan["models_dir"]
    prefs.output_dir = plan["results_dir"]


def add_front_camera(rig) -> bpy.types.Object:
    """A camera looking at the face from the orbit radius (EG3D's frontal view)."""
    cameras = addon_module("formats.cameras")
    head = addon_module("blender.rig").head_frame(rig)
    matrix, fov_x, _ = cameras.label_to_blender_camera(cameras.orbit_label(0.0, 0.0), head)
    data = bpy.data.cameras.new("Front")
    data.sensor_fit, data.angle = "HORIZONTAL", fov_x
    camera = bpy.data.objects.new("Front", data)
    bpy.context.scene.collection.objects.link(camera)
    camera.matrix_world = Matrix(matrix)
    return camera


def animate_jaw(rig, first: int, last: int) -> None:
    """Keyframes opening the mouth over the frame range (and a smile half-way)."""
    keys = addon_module("blender.rig").shape_key_owner(rig).data.shape_keys.key_blocks
    for frame in range(first, last + 1):
        phase = (frame - first) / max(1, last - first)
        keys["jaw_open"].value = math.sin(math.pi * phase)
        keys["smile_L"].value = keys["smile_R"].value = phase
        for name in ("jaw_open", "smile_L", "smile_R"):
            keys[name].keyframe_insert("value", frame=frame)


def render_imported_avatar(job_id: str, path: Path, size: int = 96) -> Path:
    """A small Cycles render of the textured mesh an avatar job imported, seen from the front (-y) through an
    orthographic camera, in a scene of its own that is removed afterwards (the artist's scene is untouched)."""
    provenance = addon_module("core.provenance").PREFIX + "job_id"
    avatar = next(obj for obj in bpy.data.objects if obj.type == "MESH" and obj.get(provenance) == job_id)
    corners = [avatar.matrix_world @ Vector(corner) for corner in avatar.bound_box]
    low = Vector([min(corner[axis] for corner in corners) for axis in range(3)])
    high = Vector([max(corner[axis] for corner in corners) for axis in range(3)])
    centre, extent = (low + high) / 2, max(high - low)
    scene = bpy.data.scenes.new("AvatarShot")
    scene.collection.objects.link(avatar)
    camera = bpy.data.objects.new("AvatarShotCamera", bpy.data.cameras.new("AvatarShotCamera"))
    camera.data.type, camera.data.ortho_scale = "ORTHO", 1.15 * extent
    camera.location = centre + Vector((0.0, -3.0 * extent, 0.0))
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    sun = bpy.data.objects.new("AvatarShotSun", bpy.data.lights.new("AvatarShotSun", "SUN"))
    sun.rotation_euler, sun.data.energy = (math.radians(60), 0.0, math.radians(-20)), 4.0
    for obj in (camera, sun):
        scene.collection.objects.link(obj)
    scene.camera = camera
    scene.render.engine, scene.cycles.device, scene.cycles.samples = "CYCLES", "CPU", 16
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.filepath = str(path)
    scene.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True, scene=scene.name)
    for data in (camera.data, sun.data):
        (bpy.data.cameras if data.id_type == "CAMERA" else bpy.data.lights).remove(data)
    bpy.data.scenes.remove(scene)
    return path


def front_image(results_dir: Path, job_id: str) -> Path:
    """The first frontal multi-view image a multiview job returned (a reference for image guidance)."""
    folder = results_dir / job_id
    items = json.loads((folder / "dataset.json").read_text())["items"]
    return folder / next(item["file"] for item in items if item["view_class"] == "front")


def run(plan: dict) -> dict:
    out = Path(plan["out"])
    results = Path(plan["results_dir"])
    step = plan["steps"]
    timeout = float(plan["job_timeout_s"])
    install_addon(plan["addon_zip"])
    configure_preferences(plan)
    jobs: dict[str, dict] = {}

    say("starting the backend (Backend > Start) and registering the models folder")
    bpy.ops.avatar_foundry.backend_start()
    wait_for_backend(timeout)
    bpy.ops.avatar_foundry.register_models()
    say(f"  models: {', '.join(model['name'] for model in session().models)}")

    say("adding the demo head and rendering its conditions (Cycles)")
    bpy.ops.avatar_foundry.add_demo_head(seed=plan["seed"])
    conditions = settings().conditions
    conditions.views, conditions.resolution, conditions.seed = step["views"], step["resolution"], plan["seed"]
    conditions.output_dir = str(out / "conditions")
    bpy.ops.avatar_foundry.render_conditions()
    rig = conditions.rig

    say("painting stylized multi-view images (Stable Diffusion + pose & depth ControlNets); the demo's tiny random "
        "models paint noise: real painting needs real Stable Diffusion weights (README, 'Use your own models')")
    generate = settings().generate
    generate.steps, generate.seed = step["diffusion_steps"], plan["seed"]
    jobs["multiview"] = run_job(bpy.ops.avatar_foundry.generate_multiview, timeout)

    say("generating a textured avatar from a seed with no generator chosen (the backend's embedded default "
        "generator) and importing it beside the head")
    avatar = settings().avatar
    avatar.seed, avatar.mesh_resolution, avatar.texture_size = plan["seed"], step["mesh_resolution"], step["texture_size"]
    jobs["generate-avatar"] = run_job(bpy.ops.avatar_foundry.generate_avatar, timeout)
    avatar_render = render_imported_avatar(jobs["generate-avatar"]["id"], out / "avatar_mesh.png")

    say("training the tri-plane 3D GAN on the painted images (coarse-to-fine pose-conditioned discriminator)")
    train = settings().train
    train.config, train.total_images = "tiny", step["gan_images"]
    jobs["train-eg3d"] = run_job(bpy.ops.avatar_foundry.train_gan, timeout)

    say("training the style prior, then an avatar guided by a reference image")
    avatar.prior_config, avatar.prior_steps = "tiny", step["prior_steps"]
    jobs["train-style-prior"] = run_job(bpy.ops.avatar_foundry.train_style_prior, timeout)
    avatar.reference_image = str(front_image(results, jobs["multiview"]["id"]))
    jobs["generate-avatar-image-guided"] = run_job(bpy.ops.avatar_foundry.generate_avatar, timeout)

    say("animating the rig's jaw with no renderer chosen: the backend's embedded default renderer (trained on the demo head)")
    animate = settings().animate
    animate.camera = add_front_camera(rig)
    animate.frame_start, animate.frame_end = 1, step["animation_frames"]
    animate.output_dir = str(out / "animation_default")
    animate_jaw(rig, animate.frame_start, animate.frame_end)
    conditions.resolution = step["default_renderer_resolution"]
    jobs["animate-default"] = run_job(bpy.ops.avatar_foundry.animate, timeout)
    conditions.resolution = step["resolution"]

    say("rendering a deferred dataset (rig passes + the character over random expressions)")
    deferred = settings().deferred
    deferred.target = addon_module("blender.rig").shape_key_owner(rig)
    deferred.random_expressions, deferred.steps = step["deferred_expressions"], step["deferred_steps"]
    deferred.output_dir = str(out / "deferred_dataset")
    bpy.ops.avatar_foundry.render_deferred_dataset()
    say("training the deferred neural renderer (ControlNet on the frozen latent diffusion model)")
    jobs["train-deferred"] = run_job(bpy.ops.avatar_foundry.train_renderer, timeout)

    say("animating the rig through the renderer just trained (Animate; on the tiny random models it paints noise)")
    animate.output_dir = str(out / "animation")
    jobs["animate"] = run_job(bpy.ops.avatar_foundry.animate, timeout)
    nphm_seconds = neural_head_run(plan, jobs, timeout)

    bpy.ops.avatar_foundry.backend_stop()
    blend = out / "demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    provenance = addon_module("core.provenance").PREFIX + "job_id"
    avatar_jobs = {jobs[name]["id"] for name in ("generate-avatar", "generate-avatar-image-guided")}
    return {
        "blend": str(blend),
        "jobs": {name: {"id": job["id"], "state": job["state"]} for name, job in jobs.items()},
        "avatars": sorted(obj.name for obj in bpy.data.objects if obj.get(provenance) in avatar_jobs and obj.type == "MESH"),
        "animation_frames": sorted(str(path) for path in (results / jobs["animate"]["id"] / "frames").glob("*.png")),
        "default_renderer_frames": sorted(str(path) for path in (results / jobs["animate-default"]["id"] / "frames").glob("*.png")),
        "avatar_glb": str(results / jobs["generate-avatar"]["id"] / "avatar.glb"),
        "nphm_animation_frames": sorted(str(path) for path in (results / jobs["animate-nphm"]["id"] / "frames").glob("*.png")),
        "nphm_seconds": nphm_seconds,
        "avatar_mesh_render": str(avatar_render),
    }


def neural_head_run(plan: dict, jobs: dict[str, dict], timeout: float) -> float:
    """Animate > Neural Head on the demo head's own head: train a tiny NPHM on its expressions, fit it to the jaw
    animation (the proxy comes back as Proxy: Neural head), render its passes as a deferred dataset, train the
    renderer on them (DiffusionAvatars' channel layout, with ambient coordinates) and animate through it.
    Returns the seconds it took."""
    started = time.monotonic()
    out, step = Path(plan["out"]), plan["steps"]
    animate = settings().animate
    say("training a neural parametric head (NPHM) on the demo head's expressions and fitting it to the animation")
    animate.nphm_config, animate.nphm_expressions, animate.nphm_steps = "tiny", step["nphm_expressions"], step["nphm_steps"]
    animate.fit_identity_steps, animate.fit_frame_steps = step["nphm_fit_steps"], step["nphm_fit_steps"]
    animate.proxy_resolution = step["nphm_proxy_resolution"]
    jobs["train-nphm"] = run_job(bpy.ops.avatar_foundry.train_neural_head, timeout)
    jobs["fit-nphm"] = run_job(bpy.ops.avatar_foundry.fit_neural_head, timeout)
    if animate.proxy != "NPHM" or animate.nphm_proxy is None:
        raise DemoFailed("the fitted neural head was not imported as the proxy")
    say("rendering the neural head's passes (canonical + ambient) with the head as target, training the renderer on them")
    deferred = settings().deferred
    deferred.output_dir = str(out / "deferred_dataset_nphm")
    bpy.ops.avatar_foundry.render_deferred_dataset()
    jobs["train-deferred-nphm"] = run_job(bpy.ops.avatar_foundry.train_renderer, timeout)
    say("animating through the neural head (Animate, Proxy: Neural head)")
    animate.output_dir = str(out / "animation_nphm")
    jobs["animate-nphm"] = run_job(bpy.ops.avatar_foundry.animate, timeout)
    return round(time.monotonic() - started, 1)


def main() -> int:
    plan = json.loads(Path(sys.argv[-1]).read_text())
    try:
        summary = run(plan)
    except (DemoFailed, RuntimeError) as error:
        say(f"FAILED: {error}")
        session().close()
        return 1
    Path(plan["out"], "summary.json").write_text(json.dumps(summary, indent=2))
    say(f"done: {summary['blend']}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is saved by now; ending here skips Python's finalization, in which the bpy 4.2 module
    # crashes once a property with a Python callback (the add-on's) was registered.
    os._exit(code)
