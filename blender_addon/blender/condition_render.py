"""Render a condition bundle from a rig: for every (frame, view), one Cycles render, then the
pose skeleton, depth, normals, canonical coordinates, mask (and the target, for a deferred
dataset), written under the bundle layout of ``formats.condition_bundle``.

``render_bundle`` is a generator yielding (fraction, stage) after each render, so an operator
can step it from a timer and keep Blender responsive while the CLI simply runs it to the end.
"""

from __future__ import annotations

import random
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import bpy
import numpy as np
from mathutils import Euler

from .. import __version__ as addon_version
from ..core.condition_passes import compute_passes
from ..core.png import write_png
from ..core.pose_skeleton import LANDMARK_NAMES, draw_skeleton
from ..core.projection import project, visible_by_depth
from ..core.rig_naming import face_part
from ..formats.cameras import HeadFrame
from ..formats.condition_bundle import ConditionBundle, Frame, Render, View, default_pass_paths, write_bundle_manifest
from ..formats.errors import FormatError
from ..formats.files import atomic_write
from . import rig as rig_data
from .condition_scene import ConditionScene, RenderSettings, read_image
from .detached_animation import DetachedAnimation
from .head_region import HeadOnlyRender
from .landmark_finder import existing_landmarks, find_landmarks, landmark_group_problems


NOTICE_PREFIX = "note: "
"""Stages starting with this are things the user must know (the CLI prints them, the panel reports them)."""


@dataclass
class BundleRequest:
    rig: str
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


def _write_render(root: Path, view: View, frame_index: int, scene: ConditionScene, head: HeadFrame,
                  landmark_points: tuple[list[str], np.ndarray], width: int, height: int) -> Render:
    raw, target_file = scene.render()
    passes = compute_passes(raw, view.label, head)
    names, points = landmark_points
    pixels, depth = project(view.label, points, width, height)
    visible = visible_by_depth(pixels, depth, passes.depth)
    landmarks = {name: [float(pixels[i, 0]), float(pixels[i, 1]), 1.0 if visible[i] else 0.0] for i, name in enumerate(names)}
    paths = default_pass_paths(view.id, frame_index, ("pose", "depth", "normal", "canonical", "mask") + (("target",) if target_file else ()))
    write_png(root / paths["pose"], draw_skeleton(landmarks, width, height))
    _save_npy(root / paths["depth"], passes.depth)
    _save_npy(root / paths["normal"], passes.normal)
    _save_npy(root / paths["canonical"], passes.canonical)
    write_png(root / paths["mask"], passes.mask)
    if target_file is not None:
        _refuse_blank_target(target_file, passes.mask > 0, view.id, frame_index)
        (root / paths["target"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target_file), root / paths["target"])
    return Render(view=view.id, frame=frame_index, passes=paths, landmarks=landmarks)


BLANK_TARGET = 2.0 / 255.0
"""A target whose pixels inside the mask all lie this close to one value shows nothing to learn."""


def _refuse_blank_target(path: Path, inside: np.ndarray, view: str, frame: int) -> None:
    """A clear error for a target that is black (or one flat colour) where the character is."""
    pixels = read_image(path)[..., :3][inside]
    if pixels.size == 0 or float(pixels.max() - pixels.min()) <= BLANK_TARGET:
        level = float(pixels.max()) * 255.0 if pixels.size else 0.0
        raise FormatError("target", f"the target render of view {view} frame {frame} is blank inside the mask "
                          f"(brightest value {level:.0f}/255)",
                          "light the scene (add a light, or remove the dark world so the default studio light is used) "
                          "and check that the target object is visible in renders and has materials")


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


def _set_bone_rotation(bone: bpy.types.PoseBone, rotation: Euler) -> None:
    """Give a pose bone this rotation (XYZ Euler, relative to rest) in the bone's own rotation mode."""
    if bone.rotation_mode == "QUATERNION":
        bone.rotation_quaternion = rotation.to_quaternion()
    elif bone.rotation_mode == "AXIS_ANGLE":
        axis, angle = rotation.to_quaternion().to_axis_angle()
        bone.rotation_axis_angle = (angle, *axis)
    else:
        bone.rotation_euler = rotation.to_matrix().to_euler(bone.rotation_mode)


def _random_value(name: str, rng: random.Random) -> float:
    """A random value for one layout entry: a key in [0, 1] (about half of them active), a face-bone
    rotation within +-0.125 rad (the jaw only opens, the head and neck stay put so the head stays framed)."""
    kind, _, rest = name.partition(":")
    if kind == "key":
        return rng.random() if rng.random() < 0.5 else 0.0
    bone_name, _, axis = rest.rpartition(":")
    part = face_part(bone_name)
    limit = 0.0 if part in ("head", "neck") else 0.25
    return rng.uniform(0.0, 0.35) if part == "jaw" and axis == "rx" else rng.uniform(-limit, limit) * 0.5


def apply_code(rig: bpy.types.Object, layout: Sequence[str], code: Sequence[float]) -> None:
    """Pose the rig to an expression code of that layout: each key on every mesh carrying it, each
    bone rotation in the bone's own rotation mode (the inverse of ``rig.expression_code``)."""
    rotations: dict[str, Euler] = {}
    for name, value in zip(layout, code):
        kind, _, rest = name.partition(":")
        if kind == "key":
            rig_data.set_shape_key(rig, rest, value)
        elif kind == "bone":
            bone_name, _, axis = rest.rpartition(":")
            rotation = rotations.setdefault(bone_name, Euler(rig_data.bone_rotation(rig.pose.bones[bone_name]), "XYZ"))
            rotation["xyz".index(axis[1])] = value
    for bone_name, rotation in rotations.items():
        _set_bone_rotation(rig.pose.bones[bone_name], rotation)


def _apply_random_expression(rig: bpy.types.Object, layout: Sequence[str], rng: random.Random) -> None:
    """A random expression (``_random_value`` for every layout entry) on the rig."""
    apply_code(rig, layout, [_random_value(name, rng) for name in layout])


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
    return [f"rig {rig.name!r} had no landmark groups; found {found} (stored as landmark: vertex groups, correct them by hand)"] + report.messages()


def render_bundle(request: BundleRequest, source_scene: bpy.types.Scene) -> Iterator[tuple[float, str]]:
    """Render every (frame, view) of the request into ``request.output_dir`` and write conditions.json."""
    rig = rig_data.find_rig(request.rig)
    if not request.views:
        raise FormatError("views", "no camera views to render", "set the number of views to at least 1")
    for message in _landmark_messages(rig):
        yield 0.0, NOTICE_PREFIX + message
    sources = rig_data.landmark_sources(rig)
    layout = rig_data.expression_layout_of(rig)
    head = rig_data.head_frame(rig)
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
    if (notice := rig_data.animation_notice(rig, random_expressions=bool(request.random_expressions))) is not None:
        yield 0.0, NOTICE_PREFIX + notice
    try:
        with DetachedAnimation(rig) if request.random_expressions else nullcontext(), \
                HeadOnlyRender(rig, rig_data.rig_meshes(rig)) as head_only, \
                ConditionScene(source_scene, [obj for obj in rig_data.rig_objects(rig) if obj not in head_only.outside], settings,
                               [obj for obj in targets if obj not in head_only.outside]) as scene:
            for notice in scene.notices:
                yield 0.0, NOTICE_PREFIX + notice
            for step in range(steps):
                if request.random_expressions:
                    _apply_random_expression(rig, layout, rng)
                    frame_index, depsgraph = step, scene.evaluated()
                else:
                    frame_index = request.frames[step] if request.frames else source_scene.frame_current
                    depsgraph = scene.set_frame(frame_index)
                frames.append(Frame(frame_index, rig_data.expression_code(rig, layout, depsgraph)))
                landmark_points = rig_data.landmark_head_points(rig_data.evaluated_landmarks(sources, depsgraph), head)
                for view in request.views:
                    scene.place_camera(view.label, head)
                    renders.append(_write_render(root, view, frame_index, scene, head, landmark_points, request.width, request.height))
                    yield len(renders) / total, f"rendered {view.id} frame {frame_index} ({len(renders)}/{total})"
    finally:
        _restore_pose(rig, backup)
    bundle = ConditionBundle(
        width=request.width, height=request.height, head_frame=head, views=list(request.views), frames=frames,
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
