"""Bring backend results into the scene: avatar meshes (glb), animations (image sequences),
multi-view images (a gallery), a fitted neural head's proxy sequence. Every imported datablock
carries its provenance.

Files are referenced by absolute paths, so a sequence loaded into an unsaved file still resolves
once the file is saved elsewhere and opened from another working directory. An avatar made from a
rig's conditions is placed beside that rig's head (along the rig's side axis), not inside it."""

from __future__ import annotations

from pathlib import Path

import bpy
from mathutils import Vector

from ..core.provenance import PREFIX, provenance_properties
from ..core.result_files import read_avatar_metadata, read_gallery
from ..formats.animation import read_animation
from ..formats.condition_bundle import read_bundle
from ..formats.errors import FormatError
from ..formats.proxy_sequence import MANIFEST_NAME as PROXY_MANIFEST
from .blender_versions import sequencer_strips, show_scene_in_sequencer
from .proxy_import import choose_as_proxy, import_proxy_sequence

PLACED_BESIDE = PREFIX + "placed_beside"
"""On an imported avatar: the rig it was placed beside (the next one goes one place further)."""
AVATAR_SPACING = 1.25
"""Head-box edges between the centres of neighbouring heads (a quarter box of air between them)."""


def _tag(datablock: bpy.types.ID, job: dict, metadata: dict | None = None, folder: Path | None = None) -> None:
    for key, value in provenance_properties(job, metadata, str(folder) if folder else None).items():
        datablock[key] = value


def _load_image(path: Path, name: str) -> bpy.types.Image:
    """An image that stays in the .blend when saved, though nothing in the scene uses it yet."""
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    image.use_fake_user = True
    return image


def import_avatar(folder: Path, job: dict, rig: bpy.types.Object | None = None) -> list[bpy.types.Object]:
    """Import ``avatar.glb`` with its baked-texture material; the meshes are placed beside the rig's head."""
    folder = Path(folder).resolve()
    metadata = read_avatar_metadata(folder)
    before = set(bpy.data.objects)
    result = bpy.ops.import_scene.gltf(filepath=str(Path(folder) / "avatar.glb"))
    if "FINISHED" not in result:
        raise FormatError("avatar.glb", "Blender's glTF importer could not read it")
    imported = [obj for obj in bpy.data.objects if obj not in before]
    for obj in imported:
        if obj.parent is None:
            obj.name = avatar_name(job, metadata)
    if rig is not None:
        _place_beside_head([obj for obj in imported if obj.parent is None], rig)
    for obj in imported:
        _tag(obj, job, metadata, folder)
    return imported


def _place_beside_head(roots: list[bpy.types.Object], rig: bpy.types.Object) -> None:
    """Scale head space to the rig's head box and put it beside the head, along the rig's side (+X)
    axis: the first avatar one place away, each further one a place further."""
    from .rig import head_frame

    frame = head_frame(rig)
    side = rig.matrix_world.to_3x3().col[0].normalized()
    place = 1 + len({obj.get(PREFIX + "job_id") for obj in bpy.data.objects if obj.get(PLACED_BESIDE) == rig.name})
    for obj in roots:
        obj.location = Vector(frame.center) + side * (frame.size * AVATAR_SPACING * place)
        obj.scale = (frame.size,) * 3
        obj[PLACED_BESIDE] = rig.name


def imported_objects(scene: bpy.types.Scene, job_id: str) -> list[bpy.types.Object]:
    """The scene's objects imported from job ``job_id``, roots first."""
    found = [obj for obj in scene.objects if obj.get(PREFIX + "job_id") == job_id]
    return sorted(found, key=lambda obj: obj.parent is not None)


def avatar_name(job: dict, metadata: dict) -> str:
    """'Avatar seed 7', or 'Avatar <job>' for one made from a style code or a reference image."""
    if metadata.get("seed") is not None:
        return f"Avatar seed {metadata['seed']}"
    return f"Avatar {job['id'][:8]}"


def load_condition_previews(folder: Path, passes: tuple[str, ...] = ("pose", "mask")) -> list[bpy.types.Image]:
    """The bundle's image passes of its first frame, one Blender image per view and pass (reloaded
    in place when the bundle is rendered again)."""
    bundle = read_bundle(folder)
    first_frame = bundle.frames[0].index
    images = []
    for render in (render for render in bundle.renders if render.frame == first_frame):
        for name in passes:
            if name in render.passes:
                image_name = f"conditions_{render.view}_{name}"
                if (existing := bpy.data.images.get(image_name)) is not None:
                    bpy.data.images.remove(existing)
                images.append(bpy.data.images.load(str(Path(folder) / render.passes[name]), check_existing=False))
                images[-1].name = image_name
    return images


def import_animation(folder: Path, job: dict, view: str | None = None) -> bpy.types.Image:
    """Load one view of an animation as an image sequence (for textures, camera backgrounds, the VSE)."""
    folder = Path(folder).resolve()
    animation = read_animation(folder)
    chosen = view or animation.views()[0]
    sequence = animation.sequence(chosen)
    if not sequence:
        raise FormatError("view", f"the animation has no view {chosen!r}; it has {', '.join(animation.views())}")
    image = _load_image(Path(folder) / sequence[0].file, f"{job['kind']}_{job['id']}_{chosen}")
    image.source = "SEQUENCE"
    image["avatar_foundry_fps"] = animation.fps
    image["avatar_foundry_frame_count"] = len(sequence)
    _tag(image, job, {"view": chosen})
    return image


def add_sequence_strip(scene: bpy.types.Scene, folder: Path, job: dict, view: str | None = None, channel: int = 1):
    """The animation as an image strip in the scene's sequencer, starting at the scene's first frame
    (and that scene shown in the Sequencer)."""
    folder = Path(folder).resolve()
    animation = read_animation(folder)
    sequence = animation.sequence(view or animation.views()[0])
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strip = sequencer_strips(editor).new_image(name=f"{job['kind']}_{job['id']}", filepath=str(Path(folder) / sequence[0].file),
                                    channel=channel, frame_start=scene.frame_start)
    for item in sequence[1:]:
        strip.elements.append(Path(item.file).name)
    _tag(strip, job)
    show_scene_in_sequencer(scene)
    return strip


def import_gallery(folder: Path, job: dict) -> list[bpy.types.Image]:
    """Every multi-view image as a Blender image, tagged with its camera label, prompt and seed."""
    images = []
    for path, entry in read_gallery(Path(folder).resolve()):
        image = _load_image(path, f"{job['id']}_{path.stem}")
        _tag(image, job, {key: entry[key] for key in ("prompt", "seed", "view_class", "yaw", "pitch") if key in entry})
        images.append(image)
    return images


def import_images(folder: Path, job: dict) -> list[bpy.types.Image]:
    """Every PNG a job returned (contact sheets, previews), tagged with the job."""
    folder = Path(folder).resolve()
    images = []
    for path in sorted(Path(folder).rglob("*.png")):
        image = _load_image(path, f"{job['id']}_{path.stem}")
        _tag(image, job, {"file": path.relative_to(folder).as_posix()})
        images.append(image)
    return images


def import_fitted_proxy(folder: Path, job: dict, scene: bpy.types.Scene) -> str:
    """A fit-nphm job's proxy sequence, made the Animate section's Neural head proxy."""
    collection = import_proxy_sequence(folder, scene)
    collection.name = f"NPHM proxy (job {job['id'][:8]})"
    _tag(collection, job, folder=folder)
    for obj in collection.objects:
        _tag(obj, job, folder=folder)
    choose_as_proxy(scene, collection)
    return f"imported {len(collection.objects)} neural head proxy frames into {collection.name!r} (Proxy: Neural head)"


def show_as_camera_background(camera: bpy.types.Object, image: bpy.types.Image) -> None:
    """The animation behind the camera's view, frame-synced, for comparing it with the rig."""
    background = camera.data.background_images.new()
    background.image = image
    background.image_user.frame_duration = int(image.get("avatar_foundry_frame_count", 1))
    background.image_user.use_auto_refresh = True
    camera.data.show_background_images = True


def import_result(folder: Path, job: dict, scene: bpy.types.Scene, rig: bpy.types.Object | None = None,
                  camera: bpy.types.Object | None = None) -> str:
    """Import a finished job's downloaded artifacts the way its kind needs; returns a summary.

    An avatar is placed at ``rig``'s head; an animation becomes an image sequence, a strip in the
    scene's sequencer and (with ``camera``) that camera's background."""
    folder = Path(folder)
    if (folder / "avatar.glb").is_file():
        return f"imported {len(import_avatar(folder, job, rig))} avatar object(s)"
    if (folder / "frames.json").is_file():
        image = import_animation(folder, job)
        add_sequence_strip(scene, folder, job)
        if camera is not None:
            show_as_camera_background(camera, image)
        return f"loaded the animation as image sequence {image.name!r} and a sequencer strip"
    if (folder / "dataset.json").is_file():
        return f"loaded {len(import_gallery(folder, job))} multi-view images"
    if (folder / "proxy" / PROXY_MANIFEST).is_file():
        return import_fitted_proxy(folder / "proxy", job, scene)
    return f"loaded {len(import_images(folder, job))} image(s) from {job['kind']}"
