"""Render a condition bundle from a rig: for every (frame, view), one Cycles render, then the
pose skeleton, depth, normals, canonical coordinates, mask (and the target, for a deferred
dataset), written under the bundle layout of ``formats.condition_bundle``.

``render_bundle`` is a generator yielding (fraction, stage) after each render, so an operator
can step it from a timer and keep Blender responsive while the CLI simply runs it to the end.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import bpy
import numpy as np

from .. import __version__ as addon_version
from ..core.condition_passes import compute_passes
from ..core.png import write_png
from ..core.pose_skeleton import draw_skeleton
from ..core.projection import project, visible_by_depth
from ..formats.cameras import HeadFrame
from ..formats.condition_bundle import ConditionBundle, Frame, Render, View, default_pass_paths, write_bundle_manifest
from ..formats.errors import FormatError
from ..formats.files import atomic_write
from . import rig as rig_data
from .condition_scene import ConditionScene, RenderSettings


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
        (root / paths["target"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target_file), root / paths["target"])
    return Render(view=view.id, frame=frame_index, passes=paths, landmarks=landmarks)


@dataclass
class _PoseBackup:
    """The rig's shape-key values and bone rotations, restored after random expressions."""

    keys: dict[str, float]
    rotations: dict[str, tuple[float, float, float]]


def _backup_pose(rig: bpy.types.Object) -> _PoseBackup:
    owner = rig_data.shape_key_owner(rig)
    keys = {block.name: block.value for block in owner.data.shape_keys.key_blocks} if owner else {}
    return _PoseBackup(keys, {bone.name: tuple(bone.rotation_euler) for bone in rig.pose.bones})


def _restore_pose(rig: bpy.types.Object, backup: _PoseBackup) -> None:
    owner = rig_data.shape_key_owner(rig)
    if owner is not None:
        for name, value in backup.keys.items():
            owner.data.shape_keys.key_blocks[name].value = value
    for name, rotation in backup.rotations.items():
        rig.pose.bones[name].rotation_euler = rotation


def _apply_random_expression(rig: bpy.types.Object, layout: Sequence[str], rng: random.Random) -> None:
    """Random values for the layout's entries: keys in [0, 1] (about half of them active),
    face-bone rotations within +-0.25 rad (the jaw only opens)."""
    owner = rig_data.shape_key_owner(rig)
    for name in layout:
        kind, _, rest = name.partition(":")
        if kind == "key" and owner is not None:
            owner.data.shape_keys.key_blocks[rest].value = rng.random() if rng.random() < 0.5 else 0.0
        elif kind == "bone":
            bone_name, _, axis = rest.rpartition(":")
            bone = rig.pose.bones[bone_name]
            bone.rotation_mode = "XYZ"
            limit = 0.0 if bone_name == "head" else 0.25
            value = rng.uniform(0.0, 0.35) if bone_name == "jaw" and axis == "rx" else rng.uniform(-limit, limit) * 0.5
            rotation = list(bone.rotation_euler)
            rotation["xyz".index(axis[1])] = value
            bone.rotation_euler = rotation


def render_bundle(request: BundleRequest, source_scene: bpy.types.Scene) -> Iterator[tuple[float, str]]:
    """Render every (frame, view) of the request into ``request.output_dir`` and write conditions.json."""
    rig = rig_data.find_rig(request.rig)
    sources = rig_data.landmark_sources(rig)
    layout = rig_data.expression_layout_of(rig)
    head = rig_data.head_frame(rig)
    if not request.views:
        raise FormatError("views", "no camera views to render", "set the number of views to at least 1")
    targets = target_objects(request.target)
    if request.random_expressions and not targets:
        raise FormatError("target", "random expressions make a deferred dataset, which needs a target", "set --target-object")
    root = Path(request.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    steps = request.random_expressions or len(request.frames) or 1
    total = steps * len(request.views)
    frames: list[Frame] = []
    renders: list[Render] = []
    objects = [rig] + list(rig.children_recursive)
    backup = _backup_pose(rig)
    rng = random.Random(request.seed)
    settings = RenderSettings(request.width, request.height, request.target_samples)
    try:
        with ConditionScene(source_scene, objects, settings, targets) as scene:
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
