"""A neural-head proxy sequence (``formats/proxy_sequence.py``, written by ``fit nphm --proxy-resolution``) in the
scene: one mesh object per frame in a collection, each shown only on its scene frame, carrying the per-vertex
canonical (``nphm_canonical``) and ambient (``nphm_ambient``) coordinates as point attributes and its frame's NPHM
expression code as a custom property, so the tracked head can be checked against the rig frame by frame.

Files hold glTF axes (+y up, the face towards +z); Blender's are +z up, the face towards -y.
"""

from __future__ import annotations

import re
from pathlib import Path

import bpy

from ..formats.proxy_sequence import CANONICAL_NAMES, read_proxy_manifest, read_proxy_ply
from . import readiness
from .blender_versions import blend_relative_path_options

CANONICAL_ATTRIBUTE = "nphm_canonical"
AMBIENT_ATTRIBUTE = "nphm_ambient"
EXPRESSION_PROPERTY = "avatar_foundry_expression"
EXPRESSION_NAMES_PROPERTY = "avatar_foundry_expression_names"
FRAME_PROPERTY = "avatar_foundry_frame"


def scene_frame(name: str, position: int) -> int:
    """The scene frame a proxy frame belongs to: the number its name ends with (``frame_0012`` -> 12), else its position + 1."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else position + 1


def _mesh(name: str, ply: dict) -> bpy.types.Mesh:
    properties = ply["properties"]
    x, y, z = (properties.index(axis) for axis in ("x", "y", "z"))
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(row[x], -row[z], row[y]) for row in ply["vertices"]], [], ply["faces"])
    canonical = [properties.index(axis) for axis in CANONICAL_NAMES]
    attribute = mesh.attributes.new(CANONICAL_ATTRIBUTE, "FLOAT_VECTOR", "POINT")
    attribute.data.foreach_set("vector", [row[i] for row in ply["vertices"] for i in canonical])
    ambient = [index for index, prop in enumerate(properties) if prop.startswith("ambient_")]
    if len(ambient) == 2:
        attribute = mesh.attributes.new(AMBIENT_ATTRIBUTE, "FLOAT2", "POINT")
        attribute.data.foreach_set("vector", [row[i] for row in ply["vertices"] for i in ambient])
    mesh.update()
    return mesh


def _show_only_on(obj: bpy.types.Object, frame: int) -> None:
    for hidden, at in ((True, frame - 1), (False, frame), (True, frame + 1)):
        obj.hide_viewport = obj.hide_render = hidden
        obj.keyframe_insert("hide_viewport", frame=at)
        obj.keyframe_insert("hide_render", frame=at)


def import_proxy_sequence(folder: Path, scene: bpy.types.Scene) -> bpy.types.Collection:
    folder = Path(folder)
    manifest = read_proxy_manifest(folder)
    collection = bpy.data.collections.new(f"NPHM proxy ({folder.name})")
    scene.collection.children.link(collection)
    collection[EXPRESSION_NAMES_PROPERTY] = list(manifest.get("expression_names", []))
    for position, frame in enumerate(manifest["frames"]):
        name = str(frame["name"])
        obj = bpy.data.objects.new(f"NPHM {name}", _mesh(f"NPHM {name}", read_proxy_ply(folder / frame["file"])))
        obj[EXPRESSION_PROPERTY] = [float(value) for value in frame.get("expression", [])]
        obj[FRAME_PROPERTY] = scene_frame(name, position)
        collection.objects.link(obj)
        _show_only_on(obj, obj[FRAME_PROPERTY])
    scene.frame_set(scene.frame_current)
    return collection


def choose_as_proxy(scene: bpy.types.Scene, collection: bpy.types.Collection) -> None:
    """Make the sequence the Animate section's proxy (Proxy: Neural head)."""
    animate = scene.avatar_foundry.animate
    animate.nphm_proxy, animate.proxy = collection, "NPHM"


class AVATAR_OT_import_nphm_proxy(bpy.types.Operator):
    """Import a fitted neural head (NPHM) proxy sequence: the proxy/ folder 'fit nphm --proxy-resolution' wrote"""

    bl_idname = "avatar_foundry.import_nphm_proxy"
    bl_label = "Import NPHM Proxy"
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(name="Proxy folder", subtype="DIR_PATH", options=blend_relative_path_options())

    @classmethod
    def poll(cls, context):
        return readiness.allow(cls, readiness.object_mode(context))

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from ..formats.errors import FormatError

        try:
            collection = import_proxy_sequence(Path(bpy.path.abspath(self.directory)), context.scene)
        except (FormatError, OSError, ValueError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        choose_as_proxy(context.scene, collection)
        self.report({"INFO"}, f"imported {len(collection.objects)} proxy frames into {collection.name!r}; Proxy is now Neural head")
        return {"FINISHED"}
