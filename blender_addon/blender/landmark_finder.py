"""Find Landmarks: ``landmark:<name>`` vertex groups for a character that has none.

Every point is placed by the one convention of ``core.pose_skeleton.LANDMARK_CONVENTION`` (OpenPose:
eyes at the pupil, ears at the ear, the neck at the base of the neck between the shoulders), in world
space, on the evaluated (posed) character, with the face's direction read from the head itself
(``head_axes``), never from the rig object's axes, which imports rotate. Sources, best first:

- eyes: eye bones, else eye meshes (by name or shape), else the blink keys;
- nose tip, mouth corners, brows, chin: shape keys of the common families (``core.landmark_keys``:
  ARKit, ``_L``/``_R``, VRoid ``Fcl_*``, VRM presets), Rigify face bones (``lips.L``, ``chin``), the
  jaw bone's tip for the chin; the nose, lacking all, is the most forward point of the face;
- neck: the neck bone's base (else the bottom of the head on its axis);
- ears: Rigify ``ear.L``/``ear.R`` bones, else the head's side at the convention's height.

Each point is then moved onto the surface a camera sees it from (the front; the side for an ear,
hair left out; front and back averaged for the neck, which lies inside) and stored as the corners of
the triangle it lands in, weighted so the group's mean is that point. Groups that hold vertices are
never overwritten. What can't be found is named with the manual way to add it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..core.landmark_keys import PEAK_LANDMARKS, KeyPart, key_parts
from ..core.pose_skeleton import INTERIOR_LANDMARKS, LANDMARK_GROUP_PREFIX, LANDMARK_NAMES
from ..core.rig_naming import find_bone, strip_prefix
from . import rig as rig_data
from .head_axes import HeadAxes, eye_bone_points, eye_mesh_centres, head_axes
from .head_region import head_points, is_hair
from .mesh_points import DeformOnly, world_vertices
from .surface_hits import SurfaceHit, SurfaceIndex

REGION_SHARE = 0.6
"""A key's region: the vertices it moves at least this share of its largest offset."""
NEAREST_SHARE = 0.15
"""A point no ray reaches is moved to the nearest surface within this share of the head's height."""
RIGIFY_FACE_BONES = {"mouth_L": "lips.L", "mouth_R": "lips.R", "ear_L": "ear.L", "ear_R": "ear.R", "chin": "chin"}
"""Landmark -> Rigify face bone (the control, or its ORG-/DEF- copy) whose head marks it."""


@dataclass
class LandmarkReport:
    found: dict[str, str] = field(default_factory=dict)
    """Landmark -> how it was found (``bone mixamorig:LeftEye``, ``key jawOpen``)."""
    kept: list[str] = field(default_factory=list)
    """Landmarks the rig already had (never overwritten)."""
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Misspelled or empty manual groups, and a face that does not look toward the front view."""
    facing: str = ""
    """How the face's direction was found (``head_axes``), for the user to check."""

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
        used = _weighted_groups(mesh_object)
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


def _weighted_groups(mesh_object: bpy.types.Object) -> set[int]:
    """Indices of the vertex groups that hold at least one vertex with a weight above zero."""
    return {element.group for vertex in mesh_object.data.vertices for element in vertex.groups if element.weight > 0}


def existing_landmarks(meshes: list[bpy.types.Object]) -> set[str]:
    """Landmarks that have a group holding at least one weighted vertex (an empty group is no landmark)."""
    present = set()
    for mesh_object in meshes:
        used = _weighted_groups(mesh_object)
        present |= {group.name[len(LANDMARK_GROUP_PREFIX):] for group in mesh_object.vertex_groups
                    if group.name.startswith(LANDMARK_GROUP_PREFIX) and group.index in used
                    and group.name[len(LANDMARK_GROUP_PREFIX):] in LANDMARK_NAMES}
    return present


@dataclass
class _Candidate:
    point: np.ndarray
    how: str


class _HeadReader:
    """One character as Find Landmarks sees it: evaluated meshes, its axes, its bones and keys."""

    def __init__(self, rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> None:
        self.rig, self.depsgraph = rig, depsgraph
        self.meshes = rig_data.rig_meshes(rig)
        self.hair = [mesh for mesh in self.meshes if is_hair(mesh)]
        self.points = head_points(rig, [mesh for mesh in self.meshes if mesh not in self.hair] or self.meshes, depsgraph)
        self.bone_names = [bone.name for bone in rig_data.pose_bones(rig)]
        self.key_names = rig_data.shape_key_names(rig)
        self.eyes = self._eyes()
        sides = list(self.eyes.values())
        self.axes: HeadAxes = head_axes(rig, self.points, [point for point, _ in sides], self._eyes_how(), depsgraph)
        self.eyes = self._eyes_by_side()
        self.index = SurfaceIndex(self.meshes, depsgraph)
        self.reach = 2.0 * float((self.points.max(axis=0) - self.points.min(axis=0)).max())

    def _eyes(self) -> dict[str, tuple[np.ndarray, str]]:
        """Eye centres: eye bones, else eye meshes (their sides decided once the axes are known); none
        otherwise (the eye landmarks then come from blink keys, and the front is taken as -Y)."""
        bones = eye_bone_points(self.rig, self.depsgraph)
        if len(bones) == 2:
            return bones
        meshes = eye_mesh_centres(self.meshes, self.depsgraph, self.points)
        if meshes:
            return {"?0": meshes[0], "?1": meshes[1]}
        return {}

    def _eyes_how(self) -> str:
        hows = sorted({how for _, how in self.eyes.values()})
        return ("eyes (" + ", ".join(hows) + ")") if hows else ""

    def _eyes_by_side(self) -> dict[str, tuple[np.ndarray, str]]:
        if not any(side.startswith("?") for side in self.eyes):
            return self.eyes
        first, second = self.eyes["?0"], self.eyes["?1"]
        if (first[0] - self.axes.centre) @ self.axes.left < (second[0] - self.axes.centre) @ self.axes.left:
            first, second = second, first
        return {"L": first, "R": second}

    def relative(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) -> coordinates along (left, up, forward) from the head's axis at eye height."""
        axes = self.axes
        return (np.asarray(points) - axes.centre) @ np.stack([axes.left, axes.up, axes.forward]).T

    # --- sources ---------------------------------------------------------------------------------

    def bone_point(self, name: str, end: str = "head") -> np.ndarray:
        """World position of a posed bone's head (or tail)."""
        evaluated = self.rig.evaluated_get(self.depsgraph)
        return np.array(evaluated.matrix_world @ getattr(evaluated.pose.bones[name], end), dtype=np.float64)

    def rigify_bone(self, base: str) -> str | None:
        matches = [name for name in self.bone_names if strip_prefix(name).lower() == base.lower()]
        return min(matches, key=len) if matches else None

    def key_point(self, landmark: str) -> _Candidate | None:
        parts = key_parts(landmark, self.key_names)
        if parts is None:
            return None
        points = [self._key_part_point(part, name, landmark in PEAK_LANDMARKS) for part, name in parts]
        if any(point is None for point in points):
            return None
        return _Candidate(np.mean(points, axis=0), "key " + "+".join(name + (f" ({part.side} side)" if part.side else "") for part, name in parts))

    def _key_part_point(self, part: KeyPart, key_name: str, peak: bool) -> np.ndarray | None:
        """The evaluated position of what a key moves: its most-moved vertex (``peak``) or the
        offset-weighted centre of the region it moves, on one side of the face for a split key."""
        carriers = [mesh for mesh in self.meshes if mesh.data.shape_keys and key_name in mesh.data.shape_keys.key_blocks]
        if not carriers:
            return None
        face = max(carriers, key=lambda mesh: (len(mesh.data.shape_keys.key_blocks), len(mesh.data.vertices)))
        key = face.data.shape_keys
        moved = np.empty(len(face.data.vertices) * 3, dtype=np.float64)
        rest = np.empty_like(moved)
        key.key_blocks[key_name].data.foreach_get("co", moved)
        key.reference_key.data.foreach_get("co", rest)
        offsets = np.linalg.norm((moved - rest).reshape(-1, 3), axis=1)
        positions = world_vertices(face, self.depsgraph)
        if len(positions) != len(offsets):
            positions = world_vertices(face)
        if part.side is not None:
            across = self.relative(positions)[:, 0]
            offsets = np.where(across > 0 if part.side == "L" else across < 0, offsets, 0.0)
        if offsets.max() <= 0.0:
            return None
        if peak:
            return positions[int(np.argmax(offsets))]
        region = offsets >= REGION_SHARE * offsets.max()
        return (positions[region] * offsets[region, None]).sum(axis=0) / offsets[region].sum()

    def nose_by_shape(self) -> _Candidate | None:
        """The most forward point of the face: in the middle band (between the eyes' inner corners),
        from just below eye height to 0.4 head below it (the nose, not the eyeballs, brow or chin)."""
        rel = self.relative(self.points)
        height = self.axes.height
        band = (np.abs(rel[:, 0]) < 0.08 * height) & (rel[:, 1] < -0.05 * height) & (rel[:, 1] > -0.4 * height)
        if not band.any():
            return None
        return _Candidate(self.points[band][int(np.argmax(rel[band, 2]))], "the most forward point of the face")

    def ear_point(self, nose: np.ndarray | None) -> np.ndarray:
        """On the head's axis at the ears' height: midway between eye and nose tip (an eighth of the
        head below the eyes without a nose)."""
        drop = 0.5 * float(self.relative(nose[None])[0, 1]) if nose is not None else -0.125 * self.axes.height
        return self.axes.centre + self.axes.up * min(drop, 0.0)

    def neck_point(self) -> _Candidate:
        name = find_bone(self.bone_names, "neck")
        if name is not None:
            return _Candidate(self.bone_point(name), f"bone {name} (its base)")
        low = float(self.relative(self.points)[:, 1].min())
        return _Candidate(self.axes.centre + self.axes.up * low, "the bottom of the head")

    # --- placing ---------------------------------------------------------------------------------

    def place(self, landmark: str, candidate: _Candidate) -> SurfaceHit | None:
        """The surface point of a landmark per the convention: seen from the front, from its side for
        an ear, inside the neck (front and back hits averaged) for the neck; never on hair."""
        axes = self.axes
        if landmark.startswith("ear_"):
            looks = [axes.left if landmark == "ear_L" else -axes.left]
        elif landmark in INTERIOR_LANDMARKS:
            looks = [axes.forward, -axes.forward]
        else:
            looks = [axes.forward]
        hits = [self.index.ray(candidate.point, look, self.reach, skip=self.hair) for look in looks]
        if hits[0] is None:
            return self.index.nearest(candidate.point, NEAREST_SHARE * axes.height, skip=self.hair)
        if len(hits) == 2 and hits[1] is not None and hits[1].mesh is hits[0].mesh:
            front, back = hits
            return SurfaceHit(front.mesh, (front.point + back.point) / 2.0, front.vertices + back.vertices,
                              [weight / 2.0 for weight in front.weights + back.weights], front.distance)
        return hits[0]


def _candidate(reader: _HeadReader, landmark: str, found: dict[str, _Candidate]) -> _Candidate | None:
    """Where a landmark is before it is placed on the surface, from the best source the head has."""
    if landmark in ("eye_L", "eye_R"):
        side = landmark[-1]
        if side in reader.eyes:
            point, how = reader.eyes[side]
            return _Candidate(point, how)
        return reader.key_point(landmark)
    if landmark == "neck":
        return reader.neck_point()
    if landmark in RIGIFY_FACE_BONES and (bone := reader.rigify_bone(RIGIFY_FACE_BONES[landmark])) is not None:
        return _Candidate(reader.bone_point(bone), f"bone {bone}")
    if landmark.startswith("ear_"):
        nose = found.get("nose_tip")
        return _Candidate(reader.ear_point(nose.point if nose else None), "the side of the head")
    if (by_key := reader.key_point(landmark)) is not None:
        return by_key
    if landmark == "chin" and (jaw := find_bone(reader.bone_names, "jaw")) is not None:
        return _Candidate(reader.bone_point(jaw, "tail"), f"bone {jaw} (its tip)")
    if landmark == "nose_tip":
        return reader.nose_by_shape()
    return None


FIND_ORDER = ("eye_L", "eye_R", "nose_tip", "neck", "ear_L", "ear_R", "brow_L", "brow_R", "mouth_L", "mouth_R", "chin")
"""The nose comes before the ears: their height is read from it."""


def _store(landmark: str, hit: SurfaceHit) -> None:
    """The hit as a ``landmark:`` group on its mesh (an empty group of that name there is filled)."""
    name = LANDMARK_GROUP_PREFIX + landmark
    group = hit.mesh.vertex_groups.get(name) or hit.mesh.vertex_groups.new(name=name)
    for vertex, weight in zip(hit.vertices, hit.weights):
        group.add([vertex], weight, "REPLACE")


def find_landmarks(rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> LandmarkReport:
    """Add the ``landmark:`` groups the rig lacks (module docstring); report what was used and the rest."""
    meshes = rig_data.rig_meshes(rig)
    report = LandmarkReport(problems=landmark_group_problems(meshes))
    present = existing_landmarks(meshes)
    if not any(len(mesh.data.vertices) for mesh in meshes):
        report.missing = [name for name in LANDMARK_NAMES if name not in present]
        return report
    with DeformOnly(meshes):
        depsgraph.update()
        _place_missing(_HeadReader(rig, depsgraph), present, report)
    depsgraph.update()
    return report


def _place_missing(reader: _HeadReader, present: set[str], report: LandmarkReport) -> None:
    """Find, place and store every landmark the rig lacks, recording how in ``report``."""
    report.facing = reader.axes.how
    if (problem := reader.axes.facing_problem()) is not None:
        report.problems.append(problem)
    placed: dict[str, _Candidate] = {}
    for landmark in FIND_ORDER:
        if landmark in present:
            report.kept.append(landmark)
            continue
        candidate = _candidate(reader, landmark, placed)
        hit = reader.place(landmark, candidate) if candidate is not None else None
        if hit is None:
            report.missing.append(landmark)
            continue
        _store(landmark, hit)
        placed[landmark] = _Candidate(hit.point, candidate.how)
        report.found[landmark] = candidate.how
    report.missing.sort(key=LANDMARK_NAMES.index)
