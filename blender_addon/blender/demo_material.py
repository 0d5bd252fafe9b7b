"""Procedural materials of the demo head: skin with a hair cap, and eyes with iris and pupil."""

from __future__ import annotations

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


def skin_material(name: str, look: AppearanceParams, head_centre_z: float, half_height: float) -> bpy.types.Material:
    """Skin tone below a hair cap; the cap's edge is set by the rest-pose height and depth, so it
    stays on the skull whatever expression the face makes."""
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
    tree.links.new(mix.outputs["Result"], shader.inputs["Base Color"])
    return material


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
