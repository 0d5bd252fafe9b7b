"""Which way a character's face looks, read from the head itself in world space.

Imported characters arrive with their armature or mesh object rotated (glTF's Y-up turned Z-up is a
90 degree rotation about X), so the rig object's own axes say nothing about the face. What does:

- up: the head bone's axis as posed, unless it points sideways (world +Z then, and without bones);
- forward: from the head's axis to its eyes (eye bones, else eye meshes found by name or shape),
  square to up; a head without eyes is taken to face the renders' front, world -Y.

The condition cameras see the face at yaw 0 from world -Y, so a face looking elsewhere is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

from ..core.rig_naming import face_part, find_bone
from .head_region import head_bone_line, is_hair, upright_head_line
from .mesh_points import world_vertices

RENDER_FRONT = np.array([0.0, -1.0, 0.0])
"""The direction the face must look for the yaw-0 view to show it (Blender's front view)."""
FACING_TOLERANCE_DEGREES = 30.0
NOT_EYE_WORDS = ("lash", "brow", "lid", "liner", "shadow", "socket", "line")
EYE_SIZE_SHARE = 0.2
"""An eye mesh (by shape) is at most this share of the head's size ..."""
EYE_ROUNDNESS = 1.7
"""... and no extent of it is more than this many times another (an eyeball, not the teeth)."""


@dataclass(frozen=True)
class HeadAxes:
    centre: np.ndarray
    """A point on the head's vertical axis at the eyes' height (the head's middle without eyes)."""
    up: np.ndarray
    forward: np.ndarray
    height: float
    """The head's extent along ``up`` (world units)."""
    how: str

    @property
    def left(self) -> np.ndarray:
        """The character's own left (``_L`` landmarks lie this way from the axis)."""
        return np.cross(self.up, self.forward)

    def facing_problem(self) -> str | None:
        """A sentence when the face does not look toward the yaw-0 camera (world -Y), else None."""
        flat = self.forward - self.forward[2] * np.array([0.0, 0.0, 1.0])
        if np.linalg.norm(flat) < 1e-6:
            angle = 90.0
        else:
            angle = math.degrees(math.acos(float(np.clip(flat @ RENDER_FRONT / np.linalg.norm(flat), -1.0, 1.0))))
        if angle <= FACING_TOLERANCE_DEGREES:
            return None
        axes = "".join(f"{'+' if value > 0 else '-'}{axis}" for axis, value in zip("XYZ", self.forward) if abs(value) > 0.5)
        looks = f"world {axes}" if axes else "an oblique direction"
        return (f"the face looks along {looks} ({self.how}), {angle:.0f} degrees from the "
                "front view (-Y): the yaw-0 view will not show the face; rotate the character to face -Y")


def _unit(vector: np.ndarray) -> np.ndarray:
    length = float(np.linalg.norm(vector))
    return vector / length if length > 1e-12 else vector


def eye_bone_points(rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> dict[str, tuple[np.ndarray, str]]:
    """'L'/'R' -> (world position of the posed eye bone's head, 'bone <name>'), for the eye bones found by name."""
    if rig.type != "ARMATURE":
        return {}
    evaluated = rig.evaluated_get(depsgraph)
    names = [bone.name for bone in evaluated.pose.bones]
    found = {}
    for side in ("L", "R"):
        name = find_bone(names, "eye", side)
        if name is not None:
            found[side] = (np.array(evaluated.matrix_world @ evaluated.pose.bones[name].head, dtype=np.float64), f"bone {name}")
    return found


def _eye_by_name(name: str) -> bool:
    """``Eyes``, ``EyeLeft``, ``Wolf3D_Eyes``; not ``Eyelashes``, ``EyeBrows``, ``Eyelid``."""
    lowered = name.lower()
    return face_part(name) == "eye" and not any(word in lowered for word in NOT_EYE_WORDS)


def _eye_by_shape(points: np.ndarray, head_points: np.ndarray) -> bool:
    """Small and round, in the upper half of the head's bounds (an eyeball, not teeth or an earring)."""
    if not len(head_points):
        return False
    extent = points.max(axis=0) - points.min(axis=0)
    low, high = head_points.min(axis=0), head_points.max(axis=0)
    centre = points.mean(axis=0)
    inside = bool(np.all(centre >= low) and np.all(centre <= high)) and centre[2] >= (low[2] + high[2]) / 2.0
    return (inside and extent.min() > 0 and extent.max() <= EYE_SIZE_SHARE * float((high - low).max())
            and extent.max() <= EYE_ROUNDNESS * extent.min())


def _eye_centres(mesh_object: bpy.types.Object, points: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """One centre for an eyeball mesh, two for one mesh holding both eyes (wider than tall: split
    across its widest horizontal spread)."""
    how = f"eye mesh {mesh_object.name}"
    extent = points.max(axis=0) - points.min(axis=0)
    if extent[:2].max() <= EYE_ROUNDNESS * extent[2]:
        return [(points.mean(axis=0), how)]
    spread = points[:, :2] - points[:, :2].mean(axis=0)
    _, _, axes = np.linalg.svd(spread, full_matrices=False)
    along = spread @ axes[0]
    return [(points[along < 0].mean(axis=0), how), (points[along >= 0].mean(axis=0), how)]


def eye_mesh_centres(meshes: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, head_points: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Centres of the two eyeballs among the meshes other than the face (the largest): meshes named
    as eyes, else meshes shaped as eyes; none unless exactly two eyes are found."""
    if len(meshes) < 2:
        return []
    face = max(meshes, key=lambda mesh: len(mesh.data.vertices))
    others = [(mesh, world_vertices(mesh, depsgraph)) for mesh in meshes
              if mesh is not face and not is_hair(mesh) and len(mesh.data.vertices)]
    for chosen in ([(mesh, points) for mesh, points in others if _eye_by_name(mesh.name)],
                   [(mesh, points) for mesh, points in others if _eye_by_shape(points, head_points)]):
        centres = [centre for mesh, points in chosen for centre in _eye_centres(mesh, points)]
        if len(centres) == 2:
            return centres
    return []


def head_axes(rig: bpy.types.Object, head_points: np.ndarray, eyes: list[np.ndarray], eyes_how: str,
              depsgraph: bpy.types.Depsgraph) -> HeadAxes:
    """The head's axes from its bone and eyes (see the module docstring); ``how`` says what was used."""
    line = upright_head_line(rig, depsgraph)
    low, high = head_points.min(axis=0), head_points.max(axis=0)
    middle = (low + high) / 2.0
    if line is not None:
        base, tip = line
        up, up_how = _unit(tip - base), "up from the head bone"
    else:
        base, up = middle, np.array([0.0, 0.0, 1.0])
        up_how = "up is world +Z" + (" (the head bone points sideways)" if head_bone_line(rig, depsgraph) is not None else "")
    height = float(np.ptp(head_points @ up))
    if eyes:
        eye_middle = np.mean(eyes, axis=0)
        axis_point = base + up * float((eye_middle - base) @ up)
        toward = eye_middle - axis_point
        toward = toward - up * float(toward @ up)
        if np.linalg.norm(toward) > 1e-9:
            return HeadAxes(axis_point, up, _unit(toward), height, f"front from the {eyes_how}, {up_how}")
    centre = middle if line is None else base + up * float((middle - base) @ up)
    forward = RENDER_FRONT - up * float(RENDER_FRONT @ up)
    forward = _unit(forward) if np.linalg.norm(forward) > 1e-6 else np.array([0.0, 0.0, -1.0])
    return HeadAxes(centre, up, forward, height, f"no eyes to tell the front: taken as the front view (-Y), {up_how}")
