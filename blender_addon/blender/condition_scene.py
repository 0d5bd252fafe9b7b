"""A temporary scene that renders condition passes of a rig with Cycles, leaving the user's scene,
render settings, compositor, view layers and camera untouched.

The rig's objects are linked (not copied) into a new scene whose only view layer overrides every
material with one that writes world position, world normal and rest-pose position into AOVs (for a
neural-head proxy: its vertices' canonical and ambient coordinates, ``SurfaceCoordinates``).
Its own compositor writes those AOVs and the alpha as EXR files, read back with bpy.data.images
(works headless and inside Blender without extra packages). An optional second view layer
renders a *target* (the detailed character) with its own materials from the same camera.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import bpy
import numpy as np
from mathutils import Matrix

from ..core.condition_passes import RawRender
from ..formats.cameras import HeadFrame, label_to_blender_camera
from .blender_versions import add_file_output_input, first_layer_collection, new_compositor, new_file_output, new_node_material, remove_compositor

AOVS = ("af_position", "af_normal", "af_canonical")
AMBIENT_AOV = "af_ambient"
AMBIENT_DIMS = 2
"""Ambient coordinates a neural-head proxy carries per vertex (NPHM's hyper dimensions, as DiffusionAvatars tracks)."""
CONDITION_LAYER = "conditions"
TARGET_LAYER = "target"
_PREFIX = "avatar_foundry_tmp"


STUDIO_LIGHTS = {"key": (3.0, -35.0, 35.0), "fill": (1.2, 40.0, 10.0), "rim": (1.5, 180.0, 40.0)}
"""The default studio rig for a target in a scene without lights: sun lights fixed to the camera,
name -> (strength, yaw and pitch in degrees from the camera's view direction)."""
STUDIO_AMBIENT = 0.25
"""Grey world colour of the studio rig (soft light from everywhere, so no side is black)."""
STUDIO_NOTICE = ("the scene has no light and a dark world: the target is lit by the default studio rig "
                 "(key, fill and rim sun lights on the camera, a grey world); add lights to light it yourself")
DARK_WORLD = 0.02
"""A world whose background is darker than this (colour x strength) lights nothing visible."""


def world_is_dark(world: bpy.types.World | None) -> bool:
    """True when the world gives (almost) no light: none, or a plain dark background colour."""
    if world is None:
        return True
    tree = world.node_tree
    if tree is None:
        return max(world.color) < DARK_WORLD
    for node in tree.nodes:
        if node.type == "BACKGROUND":
            colour, strength = node.inputs["Color"], node.inputs["Strength"]
            if colour.is_linked or strength.is_linked:
                return False
            if max(colour.default_value[:3]) * strength.default_value >= DARK_WORLD:
                return False
    return True


@dataclass(frozen=True)
class SurfaceCoordinates:
    """Which point attributes the canonical (and ambient) pass show."""

    canonical: str = "rest_position"
    canonical_in_head_space: bool = False
    """False: the attribute is a position in the object's space (the rig's rest pose, ``add_rest_position_attribute``),
    written in world space and mapped into head space afterwards; True: it holds head-space coordinates already."""
    ambient: str | None = None
    """A ``FLOAT2`` point attribute written as the ambient pass (a neural-head proxy's), or None."""


RIG_COORDINATES = SurfaceCoordinates()


@dataclass
class RenderSettings:
    width: int
    height: int
    target_samples: int = 32


def read_image(path: Path) -> np.ndarray:
    """(H, W, C) float32 of an image file (EXR or PNG, values as stored), row 0 at the top."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        image.colorspace_settings.is_data = True
        width, height = image.size
        pixels = np.empty(width * height * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(height, width, image.channels)[::-1].copy()
    finally:
        bpy.data.images.remove(image)


class ConditionScene:
    """Context manager owning every datablock it creates; all are removed on exit."""

    def __init__(self, source: bpy.types.Scene, objects: Sequence[bpy.types.Object], settings: RenderSettings,
                 target_objects: Sequence[bpy.types.Object] = (), coordinates: SurfaceCoordinates = RIG_COORDINATES) -> None:
        self.source = source
        self.coordinates = coordinates
        self.aovs = AOVS + ((AMBIENT_AOV,) if coordinates.ambient else ())
        self.objects = list(objects)
        self.target_objects = list(target_objects)
        self.settings = settings
        self.output_dir = Path(tempfile.mkdtemp(prefix="avatar_foundry_render_"))
        self._rest_flags: dict[str, bool] = {}
        self.notices: list[str] = []
        """What the user should know about this render (the default studio light)."""
        self.studio_lights: list[bpy.types.Object] = []
        self.studio_world: bpy.types.World | None = None

    @property
    def has_target(self) -> bool:
        return bool(self.target_objects)

    def __enter__(self) -> "ConditionScene":
        self._source_frame = self.source.frame_current
        self.scene = bpy.data.scenes.new(_PREFIX)
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _build(self) -> None:
        scene = self.scene
        self._configure_render(scene)
        rig_collection = self._collection("rig", self.objects)
        for obj in self.objects if not self.coordinates.canonical_in_head_space else ():
            if obj.type == "MESH":
                self._rest_flags[obj.name] = obj.add_rest_position_attribute
                obj.add_rest_position_attribute = True
        camera_data = bpy.data.cameras.new(_PREFIX)
        camera_data.sensor_fit = "HORIZONTAL"
        self.camera = bpy.data.objects.new(_PREFIX, camera_data)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera
        condition_layer = scene.view_layers[0]
        condition_layer.name = CONDITION_LAYER
        for name in self.aovs:
            aov = condition_layer.aovs.add()
            aov.name, aov.type = name, "COLOR"
        self.material = self._condition_material()
        condition_layer.material_override = self.material
        condition_layer.use_pass_combined = True
        target_layer = None
        if self.has_target:
            lights = [obj for obj in self.source.objects if obj.type == "LIGHT"]
            if not lights and world_is_dark(self.source.world):
                lights = self._studio_lights()
            target_collection = self._collection("target", self.target_objects + lights)
            target_layer = scene.view_layers.new(TARGET_LAYER)
            target_layer.samples = self.settings.target_samples
            first_layer_collection(scene).children[target_collection.name].exclude = True
            target_layer.layer_collection.children[rig_collection.name].exclude = True
        self._compositor(condition_layer, target_layer)

    def _configure_render(self, scene: bpy.types.Scene) -> None:
        render = scene.render
        render.engine = "CYCLES"
        render.resolution_x, render.resolution_y = self.settings.width, self.settings.height
        render.resolution_percentage = 100
        render.film_transparent = True
        render.use_compositing = True
        render.use_sequencer = False
        scene.cycles.device = "CPU"
        scene.cycles.samples = 1

        scene.cycles.use_denoising = False
        scene.cycles.max_bounces = 0
        scene.cycles.use_layer_samples = "USE"
        scene.cycles.filter_width = 0.01  # one sample at each pixel centre: crisp, repeatable coverage


        scene.world = self.source.world
        scene.view_settings.view_transform = self.source.view_settings.view_transform
        scene.view_settings.look = self.source.view_settings.look
        scene.frame_current = self.source.frame_current

    def _studio_lights(self) -> list[bpy.types.Object]:
        """The default studio rig (``STUDIO_LIGHTS``) on the camera, and a grey world for ambient
        light, so a scene without any light still gives a lit target from every view."""
        self.studio_world = bpy.data.worlds.new(_PREFIX)
        self.studio_world.color = (STUDIO_AMBIENT,) * 3
        for node in self.studio_world.node_tree.nodes if self.studio_world.node_tree else ():
            if node.type == "BACKGROUND":
                node.inputs["Color"].default_value = (STUDIO_AMBIENT, STUDIO_AMBIENT, STUDIO_AMBIENT, 1.0)
                node.inputs["Strength"].default_value = 1.0
        self.scene.world = self.studio_world
        self.studio_lights = []
        for name, (strength, yaw, pitch) in STUDIO_LIGHTS.items():
            data = bpy.data.lights.new(f"{_PREFIX}_{name}", "SUN")
            data.energy = strength
            light = bpy.data.objects.new(f"{_PREFIX}_{name}", data)
            light.parent = self.camera
            light.matrix_parent_inverse = Matrix.Identity(4)
            light.rotation_euler = (math.radians(pitch), math.radians(yaw), 0.0)
            self.studio_lights.append(light)
        self.notices.append(STUDIO_NOTICE)
        return list(self.studio_lights)

    def _collection(self, role: str, objects: Sequence[bpy.types.Object]) -> bpy.types.Collection:
        collection = bpy.data.collections.new(f"{_PREFIX}_{role}")
        self.scene.collection.children.link(collection)
        for obj in objects:
            if collection.objects.get(obj.name) is None:
                collection.objects.link(obj)
        return collection

    def _condition_material(self) -> bpy.types.Material:
        material = new_node_material(_PREFIX)
        tree = material.node_tree
        tree.nodes.clear()
        output = tree.nodes.new("ShaderNodeOutputMaterial")
        # A plain diffuse surface: a black emission would count as no surface (alpha 0, AOVs off).
        surface = tree.nodes.new("ShaderNodeBsdfDiffuse")
        tree.links.new(surface.outputs[0], output.inputs["Surface"])
        geometry = tree.nodes.new("ShaderNodeNewGeometry")
        sources = {"af_position": geometry.outputs["Position"], "af_normal": geometry.outputs["Normal"],
                   "af_canonical": self._canonical_socket(tree)}
        if self.coordinates.ambient:
            sources[AMBIENT_AOV] = self._attribute_socket(tree, self.coordinates.ambient)
        for name, socket in sources.items():
            node = tree.nodes.new("ShaderNodeOutputAOV")
            node.aov_name = name
            tree.links.new(socket, node.inputs["Color"])
        return material

    @staticmethod
    def _attribute_socket(tree: bpy.types.NodeTree, name: str) -> bpy.types.NodeSocket:
        node = tree.nodes.new("ShaderNodeAttribute")
        node.attribute_name = name
        return node.outputs["Vector"]

    def _canonical_socket(self, tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
        socket = self._attribute_socket(tree, self.coordinates.canonical)
        if self.coordinates.canonical_in_head_space:
            return socket
        to_world = tree.nodes.new("ShaderNodeVectorTransform")
        to_world.vector_type, to_world.convert_from, to_world.convert_to = "POINT", "OBJECT", "WORLD"
        tree.links.new(socket, to_world.inputs[0])
        return to_world.outputs[0]

    def _compositor(self, condition_layer: bpy.types.ViewLayer, target_layer: bpy.types.ViewLayer | None) -> None:
        tree = new_compositor(self.scene, _PREFIX)
        layer_node = tree.nodes.new("CompositorNodeRLayers")
        layer_node.scene, layer_node.layer = self.scene, condition_layer.name
        data = new_file_output(tree, self.output_dir, "data_", "OPEN_EXR", "32")
        for name in self.aovs:
            tree.links.new(layer_node.outputs[name], add_file_output_input(data, "RGBA", name))
        tree.links.new(layer_node.outputs["Alpha"], add_file_output_input(data, "FLOAT", "coverage"))
        if target_layer is not None:
            target_node = tree.nodes.new("CompositorNodeRLayers")
            target_node.scene, target_node.layer = self.scene, target_layer.name
            image = new_file_output(tree, self.output_dir, "target_", "PNG", "8")
            image.format.color_mode = "RGB"
            tree.links.new(target_node.outputs["Image"], add_file_output_input(image, "RGBA", "image"))

    def place_camera(self, label: Sequence[float], frame: HeadFrame) -> None:
        matrix, fov_x, _ = label_to_blender_camera(label, frame)
        self.camera.matrix_world = Matrix(matrix)
        self.camera.data.angle = fov_x
        self.camera.data.clip_start = 0.01 * frame.size
        self.camera.data.clip_end = 100.0 * frame.size

    def set_frame(self, frame: int) -> bpy.types.Depsgraph:
        """Go to a scene frame. The source scene goes there too: rendering the temporary scene
        resets its frame to the source scene's, so otherwise every frame renders the same geometry."""
        self.source.frame_set(frame)
        self.scene.frame_set(frame)
        return self.evaluated()

    def evaluated(self) -> bpy.types.Depsgraph:
        depsgraph = self.scene.view_layers[CONDITION_LAYER].depsgraph
        depsgraph.update()
        return depsgraph

    def _take(self, prefix: str, item: str) -> Path:
        matches = sorted(self.output_dir.glob(f"{prefix}{item}*"))
        if len(matches) != 1:
            raise RuntimeError(f"the compositor wrote {len(matches)} files for {item!r} in {self.output_dir}")
        return matches[0]

    def render(self) -> tuple[RawRender, Path | None]:
        """One Cycles render of the current camera and frame: the raw condition arrays, and the
        target image's file (moved out by the caller) when a target is set."""
        for leftover in self.output_dir.iterdir():
            leftover.unlink()
        bpy.ops.render.render(scene=self.scene.name, write_still=False)
        arrays = {item: read_image(self._take("data_", item)) for item in self.aovs + ("coverage",)}
        raw = RawRender(
            position=arrays["af_position"][..., :3],
            normal=arrays["af_normal"][..., :3],
            canonical=arrays["af_canonical"][..., :3],
            coverage=arrays["coverage"][..., 0],
            canonical_in_head_space=self.coordinates.canonical_in_head_space,
            ambient=arrays[AMBIENT_AOV][..., :AMBIENT_DIMS] if self.coordinates.ambient else None,
        )
        return raw, (self._take("target_", "image") if self.has_target else None)

    def __exit__(self, *exc_info) -> None:
        if self.source.frame_current != self._source_frame:
            self.source.frame_set(self._source_frame)
        for light in self.studio_lights:
            light_data = light.data
            bpy.data.objects.remove(light)
            bpy.data.lights.remove(light_data)
        if self.studio_world is not None:
            bpy.data.worlds.remove(self.studio_world)
        for name, flag in self._rest_flags.items():
            obj = bpy.data.objects.get(name)
            if obj is not None:
                obj.add_rest_position_attribute = flag
        for collection in [child for child in self.scene.collection.children]:
            bpy.data.collections.remove(collection)
        camera = getattr(self, "camera", None)
        if camera is not None:
            camera_data = camera.data
            bpy.data.objects.remove(camera)
            bpy.data.cameras.remove(camera_data)
        if getattr(self, "material", None) is not None:
            bpy.data.materials.remove(self.material)
        remove_compositor(self.scene)
        bpy.data.scenes.remove(self.scene)
        for leftover in self.output_dir.iterdir():
            leftover.unlink()
        self.output_dir.rmdir()


def camera_horizontal_fov(camera: bpy.types.Camera, width: int, height: int) -> float:
    """Horizontal field of view (radians) of a perspective camera rendering at width x height."""
    if camera.type != "PERSP":
        raise ValueError(f"camera {camera.name!r} is {camera.type.lower()}, only perspective cameras have an EG3D label")
    fit = camera.sensor_fit
    if fit == "AUTO":
        return 2.0 * math.atan(camera.sensor_width / (2.0 * camera.lens)) if width >= height else \
            2.0 * math.atan(math.tan(math.atan(camera.sensor_width / (2.0 * camera.lens))) * width / height)
    if fit == "HORIZONTAL":
        return 2.0 * math.atan(camera.sensor_width / (2.0 * camera.lens))
    return 2.0 * math.atan(camera.sensor_height / (2.0 * camera.lens) * width / height)
