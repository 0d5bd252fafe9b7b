"""What the add-on reads from a rig: its meshes, landmark positions, head frame and expression code.

A rig is an armature whose meshes form the head (the demo head, or the user's full-body character),
or a mesh with shape keys and no armature (a head that is only a mesh, with the eyes and teeth an
import leaves beside it).
Landmarks are vertex groups ``landmark:<name>`` on those meshes (the weighted mean of their
vertices, after shape keys and armature deformation).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Vector

from ..core.expression_code import extract_code, rig_layout
from ..core.projection import head_points_from_blender
from ..core.pose_skeleton import LANDMARK_GROUP_PREFIX, LANDMARK_NAMES
from ..formats.cameras import HeadFrame
from ..formats.errors import FormatError
from .blender_versions import action_fcurves
from .head_region import head_points
from .mesh_points import world_vertices

EXPRESSION_LAYOUT_PROPERTY = "avatar_foundry_expression_layout"
HEAD_BOX_MARGIN = 1.25
"""The head box is this much larger than the rest-pose bounds, so canonical coordinates stay inside."""


def rig_candidates() -> list[str]:
    """Objects of the file that can be a rig: armatures with meshes, and standalone shape-key meshes."""
    names = [obj.name for obj in bpy.data.objects if obj.type == "ARMATURE" and rig_meshes(obj)]
    names += [obj.name for obj in bpy.data.objects if _is_shape_key_head(obj)]
    return names


def _is_shape_key_head(obj: bpy.types.Object) -> bool:
    """A mesh with shape keys that no armature drives: a head that is only a mesh."""
    return obj.type == "MESH" and obj.data.shape_keys is not None and _armature_of(obj) is None


def _armature_of(obj: bpy.types.Object) -> bpy.types.Object | None:
    """The armature parenting this object (at any depth), else the one its Armature modifier uses."""
    parent = obj.parent
    while parent is not None:
        if parent.type == "ARMATURE":
            return parent
        parent = parent.parent
    for modifier in getattr(obj, "modifiers", ()):
        if modifier.type == "ARMATURE" and modifier.object is not None:
            return modifier.object
    return None


def _candidates_hint() -> str:
    names = rig_candidates()
    if not names:
        return "this file has no armature with meshes and no mesh with shape keys: add a demo head or import a character"
    return "rigs in this file: " + ", ".join(repr(name) for name in names[:12]) + (" ..." if len(names) > 12 else "")


def find_rig(name: str | None, context_object: bpy.types.Object | None = None) -> bpy.types.Object:
    """The rig named ``name``, or the given object: an armature (a mesh of one selects its armature)
    or a mesh with shape keys and no armature. Errors name the rigs the file has."""
    obj = bpy.data.objects.get(name) if name else context_object
    if obj is None:
        if name:
            raise FormatError("rig", f"there is no object named {name!r}", _candidates_hint())
        raise FormatError("rig", "no rig is selected", "select the head's armature or shape-key mesh (or add a demo head) first")
    if obj.type != "ARMATURE" and (armature := _armature_of(obj)) is not None:
        obj = armature
    if obj.type == "ARMATURE":
        if not rig_meshes(obj):
            raise FormatError("rig", f"armature {obj.name!r} has no meshes", "parent the head mesh to the armature")
        return obj
    if _is_shape_key_head(obj):
        return obj
    kind = "mesh without shape keys" if obj.type == "MESH" else obj.type.lower()
    raise FormatError("rig", f"{obj.name!r} is a {kind}, not a rig", _candidates_hint())


def rig_meshes(rig: bpy.types.Object) -> list[bpy.types.Object]:
    """The meshes of a rig: its child meshes (and meshes deformed by it). A mesh rig is its own first
    mesh, followed by the meshes of its hierarchy (``head_hierarchy``: eyes and teeth beside it) and
    the loose meshes of its collection that sit inside it (``_inside_head``)."""
    if rig.type == "MESH":
        family = [obj for obj in head_hierarchy(rig) if obj.type == "MESH" and obj is not rig and _armature_of(obj) is None]
        return [rig] + family + [obj for obj in _inside_head(rig) if obj not in family]
    children = [child for child in rig.children_recursive if child.type == "MESH"]
    deformed = [obj for obj in bpy.data.objects if obj.type == "MESH" and obj not in children and obj is not rig
                and rig.type == "ARMATURE" and _armature_of(obj) is rig]
    return children + deformed


def head_hierarchy(head: bpy.types.Object) -> list[bpy.types.Object]:
    """Everything in a mesh-only head's parent hierarchy: its topmost parent (often an empty a glTF or
    FBX import adds) and all that parent's descendants, so eyes and teeth that are siblings of the
    face under empties belong to the head; just the head and its children when it has no parent."""
    root = head
    while root.parent is not None:
        root = root.parent
    return [root] + list(root.children_recursive)


def _world_bounds(obj: bpy.types.Object) -> np.ndarray:
    """(2, 3) world-space low and high corners of an object's bounding box."""
    corners = np.array([obj.matrix_world @ Vector(corner) for corner in obj.bound_box], dtype=np.float64)
    return np.stack([corners.min(axis=0), corners.max(axis=0)])


def _inside_head(head: bpy.types.Object) -> list[bpy.types.Object]:
    """Meshes an import left loose beside a mesh-only head (eyeballs, teeth as top-level objects): in a
    collection of the head, without parent or armature, their bounds' centre inside the head's bounds."""
    low, high = _world_bounds(head)
    collections = set(head.users_collection)
    found = []
    for obj in bpy.data.objects:
        if obj is head or obj.type != "MESH" or obj.parent is not None or _armature_of(obj) is not None:
            continue
        if not collections.intersection(obj.users_collection):
            continue
        centre = _world_bounds(obj).mean(axis=0)
        if np.all(centre >= low) and np.all(centre <= high):
            found.append(obj)
    return found


def rig_objects(rig: bpy.types.Object) -> list[bpy.types.Object]:
    """Everything a condition render links: the rig, its children and the meshes it deforms (for a
    mesh-only head, its whole hierarchy, empties included, so the parents' transforms hold)."""
    objects = head_hierarchy(rig) if rig.type == "MESH" else [rig] + list(rig.children_recursive)
    return objects + [mesh for mesh in rig_meshes(rig) if mesh not in objects]


def pose_bones(rig: bpy.types.Object) -> list[bpy.types.PoseBone]:
    return list(rig.pose.bones) if rig.type == "ARMATURE" and rig.pose is not None else []


@dataclass
class LandmarkSource:
    """Where a landmark comes from: (mesh name, vertex indices, weights)."""

    mesh: str
    vertices: np.ndarray
    weights: np.ndarray


def landmark_sources(rig: bpy.types.Object) -> dict[str, LandmarkSource]:
    """Landmark name -> its vertices; refuses a rig without landmarks, naming the expected groups."""
    sources: dict[str, LandmarkSource] = {}
    for mesh_object in rig_meshes(rig):
        groups = {group.index: group.name[len(LANDMARK_GROUP_PREFIX):] for group in mesh_object.vertex_groups
                  if group.name.startswith(LANDMARK_GROUP_PREFIX)}
        if not groups:
            continue
        members: dict[str, list[tuple[int, float]]] = {name: [] for name in groups.values()}
        for vertex in mesh_object.data.vertices:
            for element in vertex.groups:
                if element.group in groups and element.weight > 0:
                    members[groups[element.group]].append((vertex.index, element.weight))
        for name, entries in members.items():
            if entries:
                indices, weights = zip(*entries)
                sources[name] = LandmarkSource(mesh_object.name, np.array(indices), np.array(weights, dtype=np.float64))
    if not sources:
        expected = ", ".join(LANDMARK_GROUP_PREFIX + name for name in LANDMARK_NAMES[:3])
        raise FormatError("rig.landmarks", f"rig {rig.name!r} has no landmark vertex groups ({expected}, ...) and Find Landmarks "
                          "found none from its bones, eye meshes, face shape keys or head shape",
                          "add vertex groups named landmark:<name> on the head mesh, or use Add Demo Head")
    return sources


def evaluated_landmarks(sources: dict[str, LandmarkSource], depsgraph: bpy.types.Depsgraph) -> dict[str, np.ndarray]:
    """World positions (Blender coordinates) of the landmarks in the evaluated (posed) state."""
    positions: dict[str, np.ndarray] = {}
    coordinates_by_mesh: dict[str, np.ndarray] = {}
    for name, source in sources.items():
        if source.mesh not in coordinates_by_mesh:
            coordinates_by_mesh[source.mesh] = world_vertices(bpy.data.objects[source.mesh], depsgraph)
        points = coordinates_by_mesh[source.mesh][source.vertices]
        positions[name] = (points * source.weights[:, None]).sum(axis=0) / source.weights.sum()
    return positions


def head_frame(rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph | None = None) -> HeadFrame:
    """The head box around the head (``head_region.head_points``: on a full-body character the head
    bone's vertices, not the body): of the rest pose without a depsgraph, of the posed head with one."""
    return frame_around(head_points(rig, rig_meshes(rig), depsgraph), rig)


def frame_around(points: np.ndarray, rig: bpy.types.Object) -> HeadFrame:
    """The head box of these points: centred on their bounds, its edge the diameter of the sphere
    around that centre holding them all, x margin. The camera orbits its centre; the sphere looks the
    same from every yaw and pitch, so a square head's diagonal is in the picture as well as its
    side (for a rounded head this is its largest extent, as a plain bounding box would give)."""
    if len(points) == 0:
        raise FormatError("rig", f"the meshes of {rig.name!r} have no vertices", "pick the rig whose meshes form the head")
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2.0
    diameter = 2.0 * float(np.linalg.norm(points - centre, axis=1).max())
    return HeadFrame(center=tuple(float(x) for x in centre), size=diameter * HEAD_BOX_MARGIN)


POSE_SLACK = 1.1
"""A posed head may reach this much beyond the sphere its rest box was made around (an open jaw, a
tilt) and still be framed by the rest box: well inside the margin, so nothing is cut."""


def holds(frame: HeadFrame, points: np.ndarray) -> bool:
    """True when the points lie inside the sphere the box frames (``frame_around``), with ``POSE_SLACK``."""
    reach = frame.size / (2.0 * HEAD_BOX_MARGIN) * POSE_SLACK
    return len(points) == 0 or bool(np.linalg.norm(points - np.asarray(frame.center), axis=1).max() <= reach)


def shape_key_owner(rig: bpy.types.Object) -> bpy.types.Object | None:
    """The rig mesh with the most shape keys (the face)."""
    candidates = [mesh for mesh in rig_meshes(rig) if mesh.data.shape_keys is not None]
    return max(candidates, key=lambda mesh: len(mesh.data.shape_keys.key_blocks), default=None)


def _key_blocks(mesh: bpy.types.Object, depsgraph: bpy.types.Depsgraph | None = None) -> list[bpy.types.ShapeKey]:
    """A mesh's shape keys without its basis (the reference key)."""
    key = mesh.data.shape_keys
    if key is None:
        return []
    reference = key.reference_key.name
    if depsgraph is not None:
        key = key.evaluated_get(depsgraph)
    return [block for block in key.key_blocks if block.name != reference]


def shape_key_names(rig: bpy.types.Object) -> list[str]:
    """Every shape key name on the rig's meshes, once, the face mesh's (most keys) first."""
    meshes = sorted(rig_meshes(rig), key=lambda mesh: -len(_key_blocks(mesh)))
    names: list[str] = []
    for mesh in meshes:
        names.extend(block.name for block in _key_blocks(mesh) if block.name not in names)
    return names


def shape_key_values(rig: bpy.types.Object, depsgraph: bpy.types.Depsgraph | None = None) -> dict[str, float]:
    """Key name -> value across all rig meshes. Where several meshes carry one name (an ARKit face,
    its eyes and teeth), the value furthest from zero wins: an animator keys one of them, usually
    the face, and the others follow."""
    values: dict[str, float] = {}
    for mesh in rig_meshes(rig):
        for block in _key_blocks(mesh, depsgraph):
            if abs(block.value) > abs(values.get(block.name, 0.0)):
                values[block.name] = float(block.value)
            values.setdefault(block.name, float(block.value))
    return values


def set_shape_key(rig: bpy.types.Object, name: str, value: float) -> None:
    """Set the key of that name on every rig mesh carrying it, so split meshes move together."""
    for mesh in rig_meshes(rig):
        block = mesh.data.shape_keys.key_blocks.get(name) if mesh.data.shape_keys else None
        if block is not None:
            block.value = value


def expression_layout_of(rig: bpy.types.Object) -> list[str]:
    """The rig's stored layout (the demo head's is DEMO_LAYOUT), else one derived from its keys and
    its face bones (``core.rig_naming``) whose rotation Blender takes from the pose (``rotation_overridden``)."""
    stored = rig.get(EXPRESSION_LAYOUT_PROPERTY)
    if stored:
        return [str(name) for name in stored]
    return rig_layout(shape_key_names(rig), [bone.name for bone in pose_bones(rig) if not rotation_overridden(rig, bone)])


ROTATION_REPLACING_CONSTRAINTS = ("COPY_ROTATION", "COPY_TRANSFORMS", "DAMPED_TRACK", "TRACK_TO", "ARMATURE")
"""Constraints that, at full influence (and Copy Rotation/Transforms in Replace mode on every axis),
give a bone a rotation of their own whatever the bone's local rotation is."""


def rotation_overridden(rig: bpy.types.Object, bone: bpy.types.PoseBone) -> bool:
    """True when Blender evaluates the bone's rotation from something else (a replacing constraint,
    as on Rigify's ``DEF-``/``ORG-`` copies, or a driver on its rotation): a rotation written to it
    moves nothing and would only be a code entry the render does not show."""
    for constraint in bone.constraints:
        if (constraint.type in ROTATION_REPLACING_CONSTRAINTS and constraint.enabled and constraint.is_valid
                and constraint.influence >= 1.0 and getattr(constraint, "mix_mode", "REPLACE") == "REPLACE"
                and all(getattr(constraint, axis, True) for axis in ("use_x", "use_y", "use_z"))):
            return True
    drivers = rig.animation_data.drivers if rig.animation_data is not None else ()
    rotation_path = bone.path_from_id() + ".rotation_"
    return any(driver.data_path.startswith(rotation_path) and not driver.mute for driver in drivers)


def bone_rotation(bone: bpy.types.PoseBone) -> tuple[float, float, float]:
    """A pose bone's rotation relative to its rest pose as XYZ Euler angles, whatever its rotation mode."""
    return tuple(bone.matrix_basis.to_quaternion().to_euler("XYZ"))


def expression_code(rig: bpy.types.Object, layout: list[str], depsgraph: bpy.types.Depsgraph) -> list[float]:
    """The rig's current expression code, read from its evaluated (animated) state."""
    evaluated = rig.evaluated_get(depsgraph)
    rotations = {bone.name: bone_rotation(bone) for bone in pose_bones(evaluated)}
    return extract_code(layout, shape_key_values(rig, depsgraph), rotations)


def animated_owners(rig: bpy.types.Object) -> list[bpy.types.ID]:
    """The datablocks whose animation moves the expression: the rig, its meshes and their shape keys."""
    meshes = rig_meshes(rig)
    owners = [rig] + [mesh for mesh in meshes if mesh is not rig] + [mesh.data.shape_keys for mesh in meshes if mesh.data.shape_keys]
    return list(dict.fromkeys(owners))


def active_actions(rig: bpy.types.Object) -> list[tuple[str, str]]:
    """(owner, action) for every action playing on the rig, its meshes or their shape keys."""
    found = []
    for owner in animated_owners(rig):
        data = owner.animation_data
        if data is not None and data.action is not None and (owner.name, data.action.name) not in found:
            found.append((owner.name, data.action.name))
    return found


HAND_SET_TOLERANCE = 1e-4
"""A channel whose current value differs from its action's value at the current frame by more than
this was set by hand, and the action will overwrite it on the next evaluation."""


def overridden_channels(owner: bpy.types.ID, frame: float) -> list[str]:
    """The animated channels of ``owner`` whose current value is not what its action gives at
    ``frame``: values set by hand that the action overrides (empty for the artist's own keys)."""
    data = owner.animation_data
    if data is None or data.action is None:
        return []
    changed = []
    for curve in action_fcurves(data):
        try:
            value = owner.path_resolve(curve.data_path)
        except ValueError:
            continue
        current = value[curve.array_index] if hasattr(value, "__getitem__") else value
        if isinstance(current, (int, float)) and abs(float(current) - curve.evaluate(frame)) > HAND_SET_TOLERANCE:
            changed.append(curve.data_path + (f"[{curve.array_index}]" if hasattr(value, "__getitem__") else ""))
    return changed


def animation_notice(rig: bpy.types.Object, random_expressions: bool = False) -> str | None:
    """What the user must know when actions drive the rig: conditions follow the evaluated animation,
    so an action (often one a glTF/FBX import left active) overrides poses and keys set by hand; said
    only when a value set by hand differs from the action's (never for the artist's own keyframes).
    Random expressions set the actions aside instead (``detached_animation``)."""
    actions = active_actions(rig)
    if not actions:
        return None
    listed = ", ".join(f"{action!r} on {owner!r}" for owner, action in actions)
    if random_expressions:
        return (f"action {listed} is active: it is set aside (with the NLA) while the random expressions render, "
                "so they are not overridden, and reattached afterwards")
    frame = bpy.context.scene.frame_current
    overridden = [channel for owner in animated_owners(rig) for channel in overridden_channels(owner, frame)]
    if not overridden:
        return None
    shown = ", ".join(overridden[:3]) + (f" and {len(overridden) - 3} more" if len(overridden) > 3 else "")
    return (f"action {listed} is active: conditions follow the evaluated animation, so its keys override "
            f"values set by hand ({shown}); unlink it in the Action Editor (or mute it in the NLA) to use your own keys")


def landmark_head_points(positions: dict[str, np.ndarray], frame: HeadFrame) -> tuple[list[str], np.ndarray]:
    """Landmark names and their head-space positions (N, 3)."""
    names = sorted(positions)
    world = np.array([positions[name] for name in names], dtype=np.float64).reshape(-1, 3)
    return names, head_points_from_blender(world, frame)
