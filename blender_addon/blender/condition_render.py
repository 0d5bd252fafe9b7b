"""Render a condition bundle from a rig: for every (frame, view), one Cycles render, then the
pose skeleton, depth, normals, canonical coordinates, mask (and the target, for a deferred
dataset), written under the bundle layout of ``formats.condition_bundle``. A request naming an
imported neural-head proxy renders that instead (``proxy_render``).

``render_bundle`` is a generator yielding (fraction, stage) after each render, so an operator
can step it from a timer and keep Blender responsive while the CLI simply runs it to the end.
"""

from __future__ import annotations

import random
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import bpy
import numpy as np

from .. import __version__ as addon_version
from ..core.condition_passes import compute_passes
from ..core.png import write_png
from ..core.expression_sampling import sample_expression, varies
from ..core.pose_skeleton import INTERIOR_LANDMARKS, LANDMARK_NAMES, REQUIRED_LANDMARKS, draw_skeleton
from ..core.projection import project, visible_by_depth
from ..formats.cameras import HeadFrame
from ..formats.condition_bundle import ConditionBundle, Frame, Render, View, default_pass_paths, write_bundle_manifest
from ..formats.errors import FormatError
from ..formats.files import atomic_write
from . import rig as rig_data
from .condition_scene import ConditionScene, RenderSettings, read_image
from .detached_animation import DetachedAnimation
from .expression_pose import apply_code, moving_channels
from .head_region import HeadOnlyRender, head_points
from .landmark_finder import existing_landmarks, find_landmarks, landmark_group_problems
from .mesh_points import DeformOnly


NOTICE_PREFIX = "note: "
"""Stages starting with this are things the user must know (the CLI prints them, the panel reports them)."""


@dataclass
class BundleRequest:
    rig: str
    """The rig to render (unused when ``proxy`` is set)."""
    output_dir: Path
    views: list[View]
    width: int
    height: int
    frames: list[int] = field(default_factory=list)
    """Scene frames to render (empty: the current frame only)."""
    target: str | None = None
    """Object or collection rendered with its own materials into the ``target`` pass."""
    random_expressions: int = 0
    """When > 0, instead of scene frames: this many random rig expressions (a deferred dataset)."""
    seed: int = 0
    target_samples: int = 32
    proxy: str = ""
    """An imported neural-head (NPHM) proxy sequence's collection: rendered instead of the rig, one object per frame."""


def target_objects(name: str | None) -> list[bpy.types.Object]:
    if not name:
        return []
    if (obj := bpy.data.objects.get(name)) is not None:
        return [obj] + [child for child in obj.children_recursive]
    if (collection := bpy.data.collections.get(name)) is not None:
        return list(collection.all_objects)
    raise FormatError("target", f"there is no object or collection named {name!r}", "pick the detailed character to render as the target")


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda temp: np.save(open(temp, "wb"), array))


def _visible_landmarks(names: list[str], pixels: np.ndarray, depth: np.ndarray, passes) -> np.ndarray:
    """Per landmark: on the surface the camera sees (``visible_by_depth``); an interior landmark (the
    neck) wherever it falls on the rendered head, as OpenPose draws a neck behind the throat."""
    visible = visible_by_depth(pixels, depth, passes.depth)
    height, width = passes.mask.shape
    for index, name in enumerate(names):
        column, row = int(np.floor(pixels[index, 0])), int(np.floor(pixels[index, 1]))
        if name in INTERIOR_LANDMARKS and depth[index] > 0 and 0 <= column < width and 0 <= row < height:
            visible[index] = bool(passes.mask[max(row - 1, 0): row + 2, max(column - 1, 0): column + 2].any())
    return visible


def write_render(root: Path, view: View, frame_index: int, scene: ConditionScene, frames: tuple[HeadFrame, HeadFrame],
                 landmark_points: tuple[list[str], np.ndarray] | None, width: int, height: int) -> tuple[Render, bool]:
    """Render one view and write its passes; returns its record and whether the head is in it (a non-empty mask).
    ``frames`` is the posed head's box (cameras, depth) and the rest pose's (canonical coordinates). Without
    landmarks (a neural-head proxy has none) there is no pose pass; a proxy's ambient coordinates give an ambient pass."""
    head, rest = frames
    raw, target_file = scene.render()
    passes = compute_passes(raw, view.label, head, rest)
    landmarks: dict[str, list[float]] = {}
    if landmark_points is not None:
        names, points = landmark_points
        pixels, depth = project(view.label, points, width, height)
        visible = _visible_landmarks(names, pixels, depth, passes)
        landmarks = {name: [float(pixels[i, 0]), float(pixels[i, 1]), 1.0 if visible[i] else 0.0] for i, name in enumerate(names)}
    written = (("pose",) if landmark_points is not None else ()) + ("depth", "normal", "canonical", "mask") \
        + (("ambient",) if passes.ambient is not None else ()) + (("target",) if target_file else ())
    paths = default_pass_paths(view.id, frame_index, written)
    if landmark_points is not None:
        write_png(root / paths["pose"], draw_skeleton(landmarks, width, height))
    _save_npy(root / paths["depth"], passes.depth)
    _save_npy(root / paths["normal"], passes.normal)
    _save_npy(root / paths["canonical"], passes.canonical)
    write_png(root / paths["mask"], passes.mask)
    if passes.ambient is not None:
        _save_npy(root / paths["ambient"], passes.ambient)
    if target_file is not None:
        _refuse_blank_target(target_file, passes.mask > 0, view.id, frame_index)
        (root / paths["target"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target_file), root / paths["target"])
    return Render(view=view.id, frame=frame_index, passes=paths, landmarks=landmarks), bool(passes.mask.any())


BLANK_TARGET = 2.0 / 255.0
"""A target whose pixels inside the mask all lie this close to one value shows nothing to learn."""
EMPTY_MASK_HINT = ("check that the head's meshes render (camera icon in the Outliner) and lie where the rig's head "
                   "bone is; a character posed far from where its animation puts it renders nowhere near the cameras")


def _refuse_blank_target(path: Path, inside: np.ndarray, view: str, frame: int) -> None:
    """A clear error for a target that is black (or one flat colour) where the character is, and for
    a view whose mask is empty (the head is not in it: nothing to compare the target with)."""
    if not inside.any():
        raise FormatError("mask", f"the mask of view {view} frame {frame} is empty: the head is not in this view",
                          EMPTY_MASK_HINT)
    pixels = read_image(path)[..., :3][inside]
    if float(pixels.max() - pixels.min()) <= BLANK_TARGET:
        level = float(pixels.max()) * 255.0
        raise FormatError("target", f"the target render of view {view} frame {frame} is blank inside the mask "
                          f"(brightest value {level:.0f}/255)",
                          "light the scene (add a light, or remove the dark world so the default studio light is used) "
                          "and check that the target object is visible in renders and has materials")


def _refuse_unusable_skeleton(rig: bpy.types.Object, sources: dict) -> None:
    """A rig whose landmarks can't draw a skeleton a pose ControlNet can read is refused before rendering."""
    missing = [name for name in REQUIRED_LANDMARKS if name not in sources]
    if missing:
        raise FormatError("rig.landmarks", f"rig {rig.name!r} has no landmark {', '.join(missing)}: its pose skeleton would not "
                          "show where the face is and which way it looks, so the renders could not condition a pose ControlNet",
                          "press Find Landmarks (it reads eye bones, eye meshes, face shape keys and the head's shape) or add "
                          f"vertex groups landmark:{missing[0]} ... on the head mesh holding the vertices at those points")


FRONT_VIEW_DEGREES = 45.0
"""Views within this yaw of the front must show the face's keypoints (nose or an eye) when they show the head."""


def refuse_empty_frame(frame: int, views: list[View], in_view: list[bool]) -> None:
    if views and not any(in_view):
        raise FormatError("mask", f"every view of frame {frame} rendered an empty mask: the head is in none of them", EMPTY_MASK_HINT)


def _refuse_unusable_frame(frame: int, views: list[View], renders: list[Render], in_view: list[bool]) -> None:
    """Refuse a frame that conditions nothing: every mask empty, or front views that show the head
    but none of its face keypoints (landmarks far from the face: a skeleton that contradicts the render)."""
    refuse_empty_frame(frame, views, in_view)
    fronts = [render for view, render, shown in zip(views, renders, in_view)
              if shown and abs(view.yaw) <= FRONT_VIEW_DEGREES and abs(view.pitch) <= FRONT_VIEW_DEGREES]
    if fronts and not any(render.landmarks.get(name, (0, 0, 0))[2] > 0.5 for render in fronts for name in REQUIRED_LANDMARKS):
        raise FormatError("rig.landmarks", f"no front view of frame {frame} shows the landmarks {', '.join(REQUIRED_LANDMARKS)} on the "
                          "head: they lie away from the face, so the pose skeleton would contradict the render",
                          "check the landmark: vertex groups (or delete them and press Find Landmarks)")


@dataclass
class _PoseBackup:
    """Every value random expressions touch: each pose bone's rotation mode, rotations (all three
    representations), location and scale, and every shape key value of every rig mesh."""

    bones: dict[str, tuple]
    keys: dict[tuple[str, str], float]


def _backup_pose(rig: bpy.types.Object) -> _PoseBackup:
    bones = {bone.name: (bone.rotation_mode, tuple(bone.rotation_euler), tuple(bone.rotation_quaternion),
                         tuple(bone.rotation_axis_angle), tuple(bone.location), tuple(bone.scale))
             for bone in rig_data.pose_bones(rig)}
    keys = {(mesh.name, block.name): block.value for mesh in rig_data.rig_meshes(rig) if mesh.data.shape_keys
            for block in mesh.data.shape_keys.key_blocks}
    return _PoseBackup(bones, keys)


def _restore_pose(rig: bpy.types.Object, backup: _PoseBackup) -> None:
    for bone in rig_data.pose_bones(rig):
        if bone.name in backup.bones:
            mode, euler, quaternion, axis_angle, location, scale = backup.bones[bone.name]
            bone.rotation_mode = mode
            bone.rotation_euler, bone.rotation_quaternion, bone.rotation_axis_angle = euler, quaternion, axis_angle
            bone.location, bone.scale = location, scale
    for (mesh_name, key_name), value in backup.keys.items():
        bpy.data.objects[mesh_name].data.shape_keys.key_blocks[key_name].value = value


def _landmark_messages(rig: bpy.types.Object) -> list[str]:
    """Find the landmarks of a rig that has none (stored as its ``landmark:`` groups); for a rig with
    manual groups, what is wrong with them. Either way, what the user should know."""
    meshes = rig_data.rig_meshes(rig)
    present = existing_landmarks(meshes)
    if present:
        missing = [name for name in LANDMARK_NAMES if name not in present]
        absent = [f"rig {rig.name!r} has no group for landmark(s) {', '.join(missing)}: Find Landmarks adds those it can "
                  "find from bones and ARKit keys, or add landmark:<name> groups by hand"] if missing else []
        return landmark_group_problems(meshes) + absent
    report = find_landmarks(rig, bpy.context.evaluated_depsgraph_get())
    if not report.found:
        return report.problems
    found = ", ".join(f"{name} from {how}" for name, how in report.found.items())
    return [f"rig {rig.name!r} had no landmark groups; found {found}; {report.facing} (stored as landmark: vertex groups, "
            "correct them by hand)"] + report.messages()


def _camera_frames(rig: bpy.types.Object, scene: ConditionScene, frames: list[int], rest: HeadFrame) -> tuple[list[HeadFrame], str | None]:
    """The head box the cameras orbit in each frame to render (the current one when ``frames`` is
    empty): the rest pose's while the posed (evaluated) head stays inside it (so every bundle of a rig
    is framed alike); else, in every frame, a box centred on the posed head of that frame, its edge the
    largest any frame needs (the head keeps its size in the picture while the cameras follow it), with
    a sentence saying so (a character opened mid-clip, a rest pose far from where the animation puts it).
    Every pass is in head space, which moves with the box; the bundle records the first frame's box."""
    meshes = rig_data.rig_meshes(rig)
    posed = [head_points(rig, meshes, scene.set_frame(frame)) for frame in frames] if frames else [head_points(rig, meshes, scene.evaluated())]
    boxes, offset = follow_posed_head(rest, posed, rig)
    return boxes, None if offset is None else (
        f"the posed head of {rig.name!r} leaves its rest-pose box (up to {offset:.2f} m from it): the cameras follow the "
        "head as posed in each frame; canonical coordinates still come from the rest pose")


def follow_posed_head(rest: HeadFrame, posed: list[np.ndarray], owner: bpy.types.Object) -> tuple[list[HeadFrame], float | None]:
    """The box of each frame (its posed head points): ``rest`` in every frame while it holds them all, and the
    farthest the posed head got from it (None then); else boxes centred on each frame's head, all of the largest size."""
    if all(rig_data.holds(rest, points) for points in posed):
        return [rest] * len(posed), None
    boxes = [rig_data.frame_around(points, owner) if len(points) else rest for points in posed]
    size = max([rest.size] + [box.size for box in boxes])
    offset = max(float(np.linalg.norm(np.asarray(box.center) - np.asarray(rest.center))) for box in boxes)
    return [HeadFrame(center=box.center, size=size) for box in boxes], offset


def _random_expression_channels(rig: bpy.types.Object, layout: list[str], head_size: float) -> tuple[list[str], list[str]]:
    """(channels random expressions sample, channels that move nothing); refuses a rig where no
    sampled channel moves the render (every random expression would look the same)."""
    moving = moving_channels(rig, layout, head_size)
    sampled = [name for name in moving if varies(name)]
    still = [name for name in layout if name not in moving]
    if not sampled:
        listed = ", ".join(still[:8]) + (" ..." if len(still) > 8 else "") if still else "none"
        raise FormatError("random_expressions", f"no expression channel of rig {rig.name!r} moves the rendered head "
                          f"(channels that move nothing: {listed}; the head and neck are kept still to stay framed), "
                          "so every random expression would render the same",
                          "give the face shape keys, or weight the face to its jaw and eye bones; or render the frames of an animation instead")
    return sampled, still


def render_bundle(request: BundleRequest, source_scene: bpy.types.Scene) -> Iterator[tuple[float, str]]:
    """Render every (frame, view) of the request into ``request.output_dir`` and write conditions.json."""
    if request.proxy:
        from .proxy_render import render_proxy_bundle

        yield from render_proxy_bundle(request, source_scene)
        return
    rig = rig_data.find_rig(request.rig)
    if not request.views:
        raise FormatError("views", "no camera views to render", "set the number of views to at least 1")
    animation = rig_data.animation_notice(rig, random_expressions=bool(request.random_expressions))  # before any evaluation resets hand-set values
    for message in _landmark_messages(rig) + ([animation] if animation else []):
        yield 0.0, NOTICE_PREFIX + message
    sources = rig_data.landmark_sources(rig)
    _refuse_unusable_skeleton(rig, sources)
    layout = rig_data.expression_layout_of(rig)
    rest = rig_data.head_frame(rig)
    targets = target_objects(request.target)
    if request.random_expressions and not targets:
        raise FormatError("target", "random expressions make a deferred dataset, which needs a target", "set --target-object")
    root = Path(request.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    steps = request.random_expressions or len(request.frames) or 1
    total = steps * len(request.views)
    frames: list[Frame] = []
    renders: list[Render] = []
    backup = _backup_pose(rig)
    rng = random.Random(request.seed)
    settings = RenderSettings(request.width, request.height, request.target_samples)
    try:
        with DetachedAnimation(rig) if request.random_expressions else nullcontext(), DeformOnly(rig_data.rig_meshes(rig)), \
                HeadOnlyRender(rig, rig_data.rig_meshes(rig)) as head_only, \
                ConditionScene(source_scene, [obj for obj in rig_data.rig_objects(rig) if obj not in head_only.outside], settings,
                               [obj for obj in targets if obj not in head_only.outside]) as scene:
            for notice in scene.notices:
                yield 0.0, NOTICE_PREFIX + notice
            if request.random_expressions:
                sampled, still = _random_expression_channels(rig, layout, rest.size)
                if still:
                    yield 0.0, NOTICE_PREFIX + (f"expression channel(s) {', '.join(still)} of rig {rig.name!r} move nothing the "
                                                "render shows (a bone that deforms no vertex, a key that moves none): "
                                                "random expressions keep them at rest")
            heads, framing = _camera_frames(rig, scene, [] if request.random_expressions else request.frames, rest)
            if framing is not None:
                yield 0.0, NOTICE_PREFIX + framing
            for step in range(steps):
                if request.random_expressions:
                    apply_code(rig, layout, sample_expression(layout, sampled, rng))
                    frame_index, depsgraph = step, scene.evaluated()
                else:
                    frame_index = request.frames[step] if request.frames else source_scene.frame_current
                    depsgraph = scene.set_frame(frame_index)
                frames.append(Frame(frame_index, rig_data.expression_code(rig, layout, depsgraph)))
                head = heads[min(step, len(heads) - 1)]
                landmark_points = rig_data.landmark_head_points(rig_data.evaluated_landmarks(sources, depsgraph), head)
                in_view, frame_renders = [], []
                for view in request.views:
                    scene.place_camera(view.label, head)
                    render, shows_head = write_render(root, view, frame_index, scene, (head, rest), landmark_points, request.width, request.height)
                    renders.append(render)
                    in_view.append(shows_head)
                    frame_renders.append(render)
                    yield len(renders) / total, f"rendered {view.id} frame {frame_index} ({len(renders)}/{total})"
                _refuse_unusable_frame(frame_index, request.views, frame_renders, in_view)
    finally:
        _restore_pose(rig, backup)
    bundle = ConditionBundle(
        width=request.width, height=request.height, head_frame=heads[0], views=list(request.views), frames=frames,
        renders=renders, expression_names=list(layout),
        source={"tool": "avatar_foundry blender add-on", "version": addon_version, "blender": bpy.app.version_string,
                "rig": rig.name, "target": request.target, "random_expressions": request.random_expressions, "seed": request.seed},
    )
    write_bundle_manifest(root, bundle)
    yield 1.0, f"wrote {len(renders)} renders to {root}"


def view_from_camera(camera: bpy.types.Object, head: HeadFrame, width: int, height: int) -> View:
    """A bundle view of a scene camera (for per-frame passes from fixed cameras)."""
    from ..formats.cameras import blender_camera_to_label, view_class, yaw_pitch_from_label
    from .condition_scene import camera_horizontal_fov

    matrix = camera.matrix_world.normalized()
    label = blender_camera_to_label([list(row) for row in matrix], camera_horizontal_fov(camera.data, width, height), width, height, head)
    yaw, pitch = yaw_pitch_from_label(label)
    safe_id = "".join(c if c.isalnum() or c in "_-" else "_" for c in camera.name)[:64]
    return View(safe_id, label, yaw, pitch, view_class(yaw))
