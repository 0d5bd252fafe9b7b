"""Find Landmarks: ``landmark:<name>`` vertex groups for a character that has none.

Two sources, each point then moved onto the surface a camera in front of the face (beside it, for
an ear) sees (an eye
bone sits behind the eyelid, a mouth-corner vertex may lie inside the lips):

- bones, found by name (``core.rig_naming``: Mixamo, Rigify, Ready Player Me/VRM, ``.L``/``_L``):
  the eye bones give the eyes, the neck bone the neck, the jaw bone's tip the chin, the head bone
  at eye height, seen from either side, the ears;
- ARKit shape keys: the vertex each key moves most (``jawOpen`` the chin, ``mouthSmileLeft`` the
  left mouth corner, ``browOuterUpLeft`` the left brow, ``eyeBlinkLeft`` the left eye, the two
  ``noseSneer`` keys together the nose tip).

Results are stored as the same vertex groups an artist paints (one vertex, weight 1), so they can be
corrected by hand; groups that exist are never overwritten. What can't be found is named with the
manual way to add it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import bpy
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from ..core.pose_skeleton import LANDMARK_GROUP_PREFIX, LANDMARK_NAMES
from ..core.rig_naming import find_bone
from . import rig as rig_data
from .mesh_points import world_vertices

ARKIT_KEYS: dict[str, tuple[str, ...]] = {
    "chin": ("jawOpen",),
    "mouth_L": ("mouthSmileLeft",),
    "mouth_R": ("mouthSmileRight",),
    "brow_L": ("browOuterUpLeft",),
    "brow_R": ("browOuterUpRight",),
    "eye_L": ("eyeBlinkLeft",),
    "eye_R": ("eyeBlinkRight",),
    "nose_tip": ("noseSneerLeft", "noseSneerRight"),
}
"""Landmark -> the ARKit keys whose most-moved vertices (averaged) locate it."""

BONE_LANDMARKS: dict[str, tuple[str, str | None, str]] = {
    "eye_L": ("eye", "L", "head"),
    "eye_R": ("eye", "R", "head"),
    "neck": ("neck", None, "middle"),
    "chin": ("jaw", None, "tail"),
    "ear_L": ("head", None, "eye height"),
    "ear_R": ("head", None, "eye height"),
}
"""Landmark -> (face part, side, which point of the bone: head, middle, tail, or the point of its
axis at the height of the eye bones, where the ears are)."""

SEEN_FROM: dict[str, Vector] = {"ear_L": Vector((1.0, 0.0, 0.0)), "ear_R": Vector((-1.0, 0.0, 0.0))}
"""Rig-space direction a landmark is seen from, where it is not the front (-Y): the ears from the sides."""

PREFERRED_SOURCE = {"eye_L": "bone", "eye_R": "bone"}
"""An eye bone marks the eye's centre better than the blink key's eyelid; elsewhere keys come first."""


@dataclass
class LandmarkReport:
    found: dict[str, str] = field(default_factory=dict)
    """Landmark -> how it was found (``bone mixamorig:LeftEye``, ``key jawOpen``)."""
    kept: list[str] = field(default_factory=list)
    """Landmarks the rig already had (never overwritten)."""
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Misspelled or empty manual groups."""

    def missing_message(self) -> str | None:
        if not self.missing:
            return None
        names = ", ".join(self.missing)
        return (f"could not find landmark(s) {names}: add a vertex group named landmark:<name> "
                f"(e.g. {LANDMARK_GROUP_PREFIX}{self.missing[0]}) on the head mesh holding the vertex at that point")

    def messages(self) -> list[str]:
        return self.problems + ([message] if (message := self.missing_message()) else [])


def _likely_landmark(group_name: str) -> str | None:
    """The landmark a misspelled group most likely means (``Landmark_Eye_l`` -> ``eye_L``)."""
    written = group_name.lower()
    for prefix in ("landmark:", "landmark_", "landmark.", "landmark-", "landmark"):
        if written.startswith(prefix):
            written = written[len(prefix):]
            break
    by_lower = {name.lower(): name for name in LANDMARK_NAMES}
    guess = difflib.get_close_matches(written, list(by_lower), n=1, cutoff=0.5)
    return by_lower[guess[0]] if guess else None


def landmark_group_problems(meshes: list[bpy.types.Object]) -> list[str]:
    """Manual landmark groups that would be dropped: unknown names (with the likely intended one),
    a misspelled prefix, and groups without any weighted vertex."""
    problems = []
    for mesh_object in meshes:
        used = {element.group for vertex in mesh_object.data.vertices for element in vertex.groups if element.weight > 0}
        for group in mesh_object.vertex_groups:
            lowered = group.name.lower()
            if not lowered.startswith("landmark"):
                continue
            name = group.name[len(LANDMARK_GROUP_PREFIX):] if group.name.startswith(LANDMARK_GROUP_PREFIX) else None
            where = f"vertex group {group.name!r} on {mesh_object.name!r}"
            if name is None or name not in LANDMARK_NAMES:
                hint = f"rename it to {LANDMARK_GROUP_PREFIX}{guess}" if (guess := _likely_landmark(group.name)) else \
                    "rename it to landmark:<name> with a name from " + ", ".join(LANDMARK_NAMES)
                problems.append(f"{where} is not a landmark name and is ignored: {hint}")
            elif group.index not in used:
                problems.append(f"{where} has no weighted vertex and is ignored: assign the landmark's vertex to it")
    return problems


def _seen_from(rig: bpy.types.Object, landmark: str) -> Vector:
    """World direction from which the landmark is visible: the face's front (-Y of the rig, Blender's
    front view), or the side for an ear."""
    return (rig.matrix_world.to_3x3() @ SEEN_FROM.get(landmark, Vector((0.0, -1.0, 0.0)))).normalized()


def _surface_vertex(point: Vector, meshes: list[bpy.types.Object], forward: Vector, reach: float,
                    depsgraph: bpy.types.Depsgraph) -> tuple[bpy.types.Object, int] | None:
    """The mesh vertex nearest to where a ray from ``forward`` of ``point``, looking back at it, first
    meets the rig's surface: the visible surface over the point."""
    origin = point + forward * reach
    best: tuple[float, bpy.types.Object, int] | None = None
    for mesh_object in meshes:
        positions = world_vertices(mesh_object, depsgraph)
        polygons = [tuple(polygon.vertices) for polygon in mesh_object.data.polygons]
        if len(positions) != len(mesh_object.data.vertices) or not polygons:
            continue
        tree = BVHTree.FromPolygons(positions.tolist(), polygons)
        location, _, polygon, distance = tree.ray_cast(origin, -forward, 2.0 * reach)
        if location is not None and (best is None or distance < best[0]):
            corners = list(polygons[polygon])
            nearest = corners[int(np.argmin(np.linalg.norm(positions[corners] - np.array(location), axis=1)))]
            best = (distance, mesh_object, nearest)
    return None if best is None else (best[1], best[2])


def _bone_point(rig: bpy.types.Object, landmark: str) -> tuple[Vector, str] | None:
    if rig.type != "ARMATURE" or landmark not in BONE_LANDMARKS:
        return None
    part, wanted_side, where = BONE_LANDMARKS[landmark]
    name = find_bone([bone.name for bone in rig.pose.bones], part, wanted_side)
    if name is None:
        return None
    bone = rig.pose.bones[name]
    if where == "eye height":
        eye = find_bone([other.name for other in rig.pose.bones], "eye")
        height = rig.pose.bones[eye].head if eye else (bone.head + bone.tail) / 2.0
        axis = bone.tail - bone.head
        share = 0.5 if axis.length_squared == 0.0 else max(0.0, min(1.0, (height - bone.head).dot(axis) / axis.length_squared))
        return rig.matrix_world @ (bone.head + axis * share), f"bone {name}"
    local = {"head": bone.head, "tail": bone.tail, "middle": (bone.head + bone.tail) / 2.0}[where]
    return rig.matrix_world @ local, f"bone {name}"


def _key_point(meshes: list[bpy.types.Object], landmark: str) -> tuple[Vector, str] | None:
    """The mean rest position (world) of the vertices the landmark's ARKit keys move most."""
    points = []
    for key_name in ARKIT_KEYS.get(landmark, ()):
        carriers = [mesh for mesh in meshes if mesh.data.shape_keys and key_name in mesh.data.shape_keys.key_blocks]
        if not carriers:
            return None
        face = max(carriers, key=lambda mesh: (len(mesh.data.shape_keys.key_blocks), len(mesh.data.vertices)))
        key = face.data.shape_keys
        moved = np.empty(len(face.data.vertices) * 3, dtype=np.float64)
        rest = np.empty_like(moved)
        key.key_blocks[key_name].data.foreach_get("co", moved)
        key.reference_key.data.foreach_get("co", rest)
        offsets = np.linalg.norm((moved - rest).reshape(-1, 3), axis=1)
        if offsets.max() <= 0.0:
            return None
        points.append(face.matrix_world @ Vector(rest.reshape(-1, 3)[int(np.argmax(offsets))]))
    if not points:
        return None
    return sum(points, Vector()) / len(points), "key " + "+".join(ARKIT_KEYS[landmark])


def existing_landmarks(meshes: list[bpy.types.Object]) -> set[str]:
    return {group.name[len(LANDMARK_GROUP_PREFIX):] for mesh in meshes for group in mesh.vertex_groups
            if group.name.startswith(LANDMARK_GROUP_PREFIX) and group.name[len(LANDMARK_GROUP_PREFIX):] in LANDMARK_NAMES}


def find_landmarks(rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> LandmarkReport:
    """Add the ``landmark:`` groups the rig lacks, from its bones and ARKit keys; report the rest."""
    meshes = rig_data.rig_meshes(rig)
    report = LandmarkReport(problems=landmark_group_problems(meshes))
    present = existing_landmarks(meshes)
    for landmark in LANDMARK_NAMES:
        if landmark in present:
            report.kept.append(landmark)
            continue
        finders = [_bone_point(rig, landmark), _key_point(meshes, landmark)]
        if PREFERRED_SOURCE.get(landmark) != "bone":
            finders.reverse()
        source = next((found for found in finders if found is not None), None)
        target = _surface_vertex(source[0], meshes, _seen_from(rig, landmark), rig_data.head_frame(rig).size, depsgraph) if source else None
        if target is None:
            report.missing.append(landmark)
            continue
        mesh_object, vertex = target
        mesh_object.vertex_groups.new(name=LANDMARK_GROUP_PREFIX + landmark).add([vertex], 1.0, "REPLACE")
        report.found[landmark] = source[1]
    return report
