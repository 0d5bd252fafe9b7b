"""A rig's evaluated head as meshes on disk, for NPHM: the neutral and random expressions (training data with
exact correspondences: the same vertices in the same order), or the rig's animation frame by frame (targets to
fit NPHM to, so that any rig animation drives the neural head).

Only the head is written: on a full-body character the faces whose vertices all belong to the head and neck
bones (``head_region``); every mesh of a head-only rig. Positions are the scene's (world space, its units).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator, Sequence

import bpy
import numpy as np

from ..formats.proxy_sequence import write_ply
from . import rig as rig_data
from ..core.expression_sampling import sample_expression
from .condition_render import _backup_pose, _random_expression_channels, _restore_pose
from .expression_pose import apply_code
from .detached_animation import DetachedAnimation
from .head_region import head_bones, vertices_in
from .mesh_points import world_vertices

NEUTRAL_NAME = "neutral"


def evaluated_head(rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) world, faces (F, 3)) of the rig's head meshes as evaluated now, triangulated."""
    bones = head_bones(rig)
    chunks, faces, offset = [], [], 0
    for mesh_object in rig_data.rig_meshes(rig):
        vertices = world_vertices(mesh_object, depsgraph)
        mesh = mesh_object.evaluated_get(depsgraph).data
        mesh.calc_loop_triangles()
        triangles = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", triangles)
        triangles = triangles.reshape(-1, 3)
        if bones is not None and len(vertices) == len(mesh_object.data.vertices):
            inside = vertices_in(mesh_object, rig, bones.region)
            triangles = triangles[inside[triangles].all(axis=1)]
        chunks.append(vertices)
        faces.append(triangles + offset)
        offset += len(vertices)
    faces_all = np.concatenate(faces) if faces else np.zeros((0, 3), np.int64)
    if len(faces_all) == 0:
        raise ValueError(f"rig {rig.name!r} has no head faces to export")
    used = np.unique(faces_all)  # the head's vertices only, in index order (the same for every expression)
    remap = np.full(offset, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return np.concatenate(chunks)[used], remap[faces_all]


def blender_to_gltf_axes(points: np.ndarray) -> np.ndarray:
    return np.stack([points[:, 0], points[:, 2], -points[:, 1]], axis=1)


def write_head_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    return write_ply(path, ["x", "y", "z"], blender_to_gltf_axes(vertices).astype("<f4").tobytes(), faces.astype("<i4").tobytes(),
                     len(vertices), len(faces))


def export_random_expressions(rig_name: str, out_dir: Path, count: int, seed: int = 0) -> Iterator[tuple[float, str]]:
    """``out_dir/neutral.ply`` (every expression value 0) and ``expression_<k>.ply`` for ``count`` random expressions
    of the rig (the same random expressions as a deferred dataset's); the rig's pose is restored afterwards."""
    rig = rig_data.find_rig(rig_name)
    layout = rig_data.expression_layout_of(rig)
    backup = _backup_pose(rig)
    rng = random.Random(seed)
    try:
        with DetachedAnimation(rig):
            sampled, _ = _random_expression_channels(rig, layout, rig_data.head_frame(rig).size)
            apply_code(rig, layout, [0.0] * len(layout))
            write_head_ply(Path(out_dir) / f"{NEUTRAL_NAME}.ply", *evaluated_head(rig, _evaluated()))
            for index in range(count):
                apply_code(rig, layout, sample_expression(layout, sampled, rng))
                write_head_ply(Path(out_dir) / f"expression_{index:04d}.ply", *evaluated_head(rig, _evaluated()))
                yield (index + 1) / max(count, 1), f"exported expression {index + 1}/{count}"
    finally:
        _restore_pose(rig, backup)


def export_frames(rig_name: str, out_dir: Path, frames: Sequence[int]) -> Iterator[tuple[float, str]]:
    """``out_dir/frame_<n>.ply``: the rig's head at each scene frame (its animation as it plays)."""
    rig = rig_data.find_rig(rig_name)
    scene = bpy.context.scene
    current = scene.frame_current
    try:
        for index, frame in enumerate(frames):
            scene.frame_set(frame)
            write_head_ply(Path(out_dir) / f"frame_{frame:04d}.ply", *evaluated_head(rig, _evaluated()))
            yield (index + 1) / len(frames), f"exported frame {frame}"
    finally:
        scene.frame_set(current)


def _evaluated() -> bpy.types.Depsgraph:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    return depsgraph
