"""Procedural materials of the demo head: skin with a hair cap (and, if the look asks, painted lips), and
eyes with iris and pupil."""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from ..core.demo_appearance import AppearanceParams
from .blender_versions import new_node_material


def _rgba(colour: tuple[float, float, float]) -> tuple[float, float, float, float]:
    return (colour[0], colour[1], colour[2], 1.0)


def _math(tree: bpy.types.NodeTree, operation: str, a, b=None, clamp: bool = False) -> bpy.types.NodeSocket:
    """A Math node on ``a`` (socket or number) and ``b``; returns its output socket."""
    node = tree.nodes.new("ShaderNodeMath")
    node.operation = operation
    node.use_clamp = clamp
    for index, value in enumerate((a, b)):
        if value is None:
            continue
        if isinstance(value, bpy.types.NodeSocket):
            tree.links.new(value, node.inputs[index])
        else:
            node.inputs[index].default_value = value
    return node.outputs[0]


MOUTH_LINE_COLOUR = (0.03, 0.01, 0.01)
LIP_HALF_HEIGHT = 0.5
"""Half height of the painted lips, in units of the mouth's half width."""
MOUTH_LINE_HEIGHT = 0.3
"""Height of the dark mouth line, below the mouth corners, in units of the mouth's half width."""


@dataclass(frozen=True)
class MouthPlacement:
    """Where the painted mouth sits on the head at rest (the rest_position attribute's space)."""

    centre: tuple[float, float, float]
    """Midway between the mouth corners."""
    half_width: float


def skin_material(name: str, look: AppearanceParams, head_centre_z: float, half_height: float,
                  mouth: MouthPlacement | None = None) -> bpy.types.Material:
    """Skin tone below a hair cap; the cap's edge is set by the rest-pose height and depth, so it
    stays on the skull whatever expression the face makes. With ``look.lip_colour`` and ``mouth``,
    lips and a mouth line are painted the same way, so they move and stretch with the face."""
    material = new_node_material(name)
    tree = material.node_tree
    shader = tree.nodes["Principled BSDF"]
    shader.inputs["Roughness"].default_value = 0.55
    rest = tree.nodes.new("ShaderNodeAttribute")
    rest.attribute_name = "rest_position"
    split = tree.nodes.new("ShaderNodeSeparateXYZ")
    tree.links.new(rest.outputs["Vector"], split.inputs[0])
    height = _math(tree, "DIVIDE", _math(tree, "SUBTRACT", split.outputs["Z"], head_centre_z), half_height)
    backness = _math(tree, "MULTIPLY", _math(tree, "DIVIDE", split.outputs["Y"], half_height), 1.5 * look.hair_back_drop)
    noise = tree.nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 25.0
    tree.links.new(rest.outputs["Vector"], noise.inputs["Vector"])
    wobble = _math(tree, "MULTIPLY", _math(tree, "SUBTRACT", noise.outputs["Fac"], 0.5), 0.08)
    level = _math(tree, "ADD", _math(tree, "ADD", height, backness), wobble)
    hair = _math(tree, "MULTIPLY", _math(tree, "SUBTRACT", level, look.hairline), 40.0, clamp=True)
    mix = tree.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.inputs["A"].default_value = _rgba(look.skin_tone)
    mix.inputs["B"].default_value = _rgba(look.hair_colour)
    tree.links.new(hair, mix.inputs["Factor"])
    colour = mix.outputs["Result"]
    if look.lip_colour is not None and mouth is not None:
        colour = _painted_mouth(tree, rest.outputs["Vector"], colour, look.lip_colour, mouth)
    tree.links.new(colour, shader.inputs["Base Color"])
    return material


def _ellipse(tree: bpy.types.NodeTree, x: bpy.types.NodeSocket, z: bpy.types.NodeSocket, half_x: float, half_z: float,
             centre_z: float) -> bpy.types.NodeSocket:
    """0..1: 1 well inside the ellipse of these half axes around (0, centre_z) in x-z, 0 outside, a soft edge between."""
    u = _math(tree, "DIVIDE", x, half_x)
    v = _math(tree, "DIVIDE", _math(tree, "SUBTRACT", z, centre_z), half_z)
    inside = _math(tree, "SUBTRACT", 1.0, _math(tree, "ADD", _math(tree, "MULTIPLY", u, u), _math(tree, "MULTIPLY", v, v)))
    return _math(tree, "MULTIPLY", inside, 6.0, clamp=True)


def _painted_mouth(tree: bpy.types.NodeTree, rest: bpy.types.NodeSocket, skin: bpy.types.NodeSocket,
                   lip_colour: tuple[float, float, float], mouth: MouthPlacement) -> bpy.types.NodeSocket:
    """``skin`` with lips around the mouth and a dark line on the jaw's side of the corners, on the face only."""
    offset = tree.nodes.new("ShaderNodeVectorMath")
    offset.operation = "SUBTRACT"
    tree.links.new(rest, offset.inputs[0])
    offset.inputs[1].default_value = mouth.centre
    split = tree.nodes.new("ShaderNodeSeparateXYZ")
    tree.links.new(offset.outputs[0], split.inputs[0])
    width = mouth.half_width
    on_face = _math(tree, "LESS_THAN", split.outputs["Y"], width)
    lips = _ellipse(tree, split.outputs["X"], split.outputs["Z"], 1.15 * width, LIP_HALF_HEIGHT * width, 0.0)
    line_half = 0.5 * MOUTH_LINE_HEIGHT * width
    line = _ellipse(tree, split.outputs["X"], split.outputs["Z"], 0.95 * width, line_half, -line_half)
    painted = skin
    for amount, paint in ((lips, lip_colour), (line, MOUTH_LINE_COLOUR)):
        layer = tree.nodes.new("ShaderNodeMix")
        layer.data_type = "RGBA"
        tree.links.new(_math(tree, "MULTIPLY", amount, on_face), layer.inputs["Factor"])
        tree.links.new(painted, layer.inputs["A"])
        layer.inputs["B"].default_value = _rgba(paint)
        painted = layer.outputs["Result"]
    return painted


def eye_material(name: str, look: AppearanceParams) -> bpy.types.Material:
    """White sclera, coloured iris and black pupil around the eye object's local -y (its gaze)."""
    material = new_node_material(name)
    tree = material.node_tree
    shader = tree.nodes["Principled BSDF"]
    shader.inputs["Roughness"].default_value = 0.15
    coordinates = tree.nodes.new("ShaderNodeTexCoord")
    normalize = tree.nodes.new("ShaderNodeVectorMath")
    normalize.operation = "NORMALIZE"
    tree.links.new(coordinates.outputs["Object"], normalize.inputs[0])
    split = tree.nodes.new("ShaderNodeSeparateXYZ")
    tree.links.new(normalize.outputs[0], split.inputs[0])
    gaze = _math(tree, "MULTIPLY", split.outputs["Y"], -1.0)
    iris = _math(tree, "GREATER_THAN", gaze, 0.82)
    pupil = _math(tree, "GREATER_THAN", gaze, 0.95)
    iris_mix = tree.nodes.new("ShaderNodeMix")
    iris_mix.data_type = "RGBA"
    iris_mix.inputs["A"].default_value = (0.9, 0.9, 0.88, 1.0)
    iris_mix.inputs["B"].default_value = _rgba(look.eye_colour)
    tree.links.new(iris, iris_mix.inputs["Factor"])
    pupil_mix = tree.nodes.new("ShaderNodeMix")
    pupil_mix.data_type = "RGBA"
    tree.links.new(iris_mix.outputs["Result"], pupil_mix.inputs["A"])
    pupil_mix.inputs["B"].default_value = (0.01, 0.01, 0.01, 1.0)
    tree.links.new(pupil, pupil_mix.inputs["Factor"])
    tree.links.new(pupil_mix.outputs["Result"], shader.inputs["Base Color"])
    return material
