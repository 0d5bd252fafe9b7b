"""Where Blender 4.2 LTS, 4.5 LTS and 5.x differ, bridged in one place.

Every other module of the add-on calls these functions instead of asking which Blender it runs in.
Each bridge tests for the API itself (an attribute or a value), not for a version number, and says
which Blenders have which form:

- a new material has no node tree before 5.0 (``use_nodes`` is off);
- the compositor is a node group from 5.0: the scene's ``compositing_node_group`` (5.0), the node group of
  a compositor effect where scenes have those (5.3, which deprecates ``compositing_node_group``); before 5.0
  it is the scene's own ``node_tree`` (with ``use_nodes``);
- the File Output node has ``directory``/``file_name``/``format.media_type``/``file_output_items``
  from 5.0, ``base_path``/``file_slots`` before;
- the sequencer's strips are ``sequence_editor.strips`` from 4.4, ``sequences`` before; a strip's first
  shown frame is its ``left_handle`` from 5.3, ``frame_final_start`` before;
- actions have slots (``AnimData.action_slot``, ``last_slot_identifier``) from 4.4;
- from 5.2 the first view layer of a scene made by ``bpy.data.scenes.new()`` has no layer collection
  until the view layers are synced;
- a path property can say it supports ``//`` (relative to the .blend) in 4.5 and later, not in 4.2;
- from 5.0 the Sequencer shows the workspace's ``sequencer_scene``, before it the active scene;
- an action's F-curves belong to its slots from 4.4 (``Action.fcurves`` is gone in 5.0).
"""

from __future__ import annotations

from pathlib import Path

import bpy


def new_node_material(name: str) -> bpy.types.Material:
    """A material with its default node tree (Principled BSDF into Material Output) in every Blender."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # before 5.0
        material.use_nodes = True
    return material


def new_compositor(scene: bpy.types.Scene, name: str) -> bpy.types.NodeTree:
    """An empty compositor node tree that ``scene`` renders through."""
    if hasattr(scene, "compositor_effects"):  # 5.3: compositor effects, each with a node group
        tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
        scene.compositor_effects.new(name=name).node_group = tree
        return tree
    if hasattr(scene, "compositing_node_group"):  # 5.0
        tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
        scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()
    return tree


def compositor(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The node tree ``scene`` composites through, or None."""
    if hasattr(scene, "compositor_effects"):
        effect = scene.compositor_effects.active
        return effect.node_group if effect is not None else None
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def remove_compositor(scene: bpy.types.Scene) -> None:
    """Removes the node tree ``new_compositor`` made (before 5.0 it belongs to the scene and goes with it)."""
    tree = compositor(scene)
    if tree is not None and tree.name in bpy.data.node_groups and bpy.data.node_groups[tree.name] == tree:
        bpy.data.node_groups.remove(tree)


def new_file_output(tree: bpy.types.NodeTree, directory: Path, prefix: str, file_format: str, color_depth: str) -> bpy.types.Node:
    """A File Output node writing single-layer images named ``<prefix><input name><frame>`` into ``directory``;
    it has no inputs until ``add_file_output_input`` adds them."""
    node = tree.nodes.new("CompositorNodeOutputFile")
    if hasattr(node, "file_output_items"):  # 5.0+
        node.directory = str(directory)
        node.file_name = prefix
        node.format.media_type = "IMAGE"
    else:
        node.base_path = str(directory)
        node.file_slots.clear()
        node["avatar_foundry_prefix"] = prefix
    node.format.file_format = file_format
    node.format.color_depth = color_depth
    return node


def add_file_output_input(node: bpy.types.Node, socket_type: str, name: str) -> bpy.types.NodeSocket:
    """A new input of a ``new_file_output`` node (``socket_type`` 'RGBA' or 'FLOAT'), written as the
    file ``<prefix><name>...``; returns the socket to link."""
    if hasattr(node, "file_output_items"):  # 5.0+
        node.file_output_items.new(socket_type, name)
        return node.inputs[name]
    node.file_slots.new(node["avatar_foundry_prefix"] + name)
    return node.inputs[-1]


def sequencer_strips(editor: bpy.types.SequenceEditor) -> bpy.types.bpy_prop_collection:
    """The top-level strips of a sequence editor (``strips`` from 4.4, ``sequences`` before)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def strip_start(strip: bpy.types.Strip) -> int:
    """The first frame a strip shows (``left_handle`` from 5.3, ``frame_final_start`` before)."""
    return strip.left_handle if hasattr(strip, "left_handle") else strip.frame_final_start


def action_slot(anim_data: bpy.types.AnimData) -> tuple[object | None, str]:
    """The assigned action slot and the last slot identifier (None and '' before 4.4, which has no slots)."""
    if not hasattr(anim_data, "action_slot"):
        return None, ""
    return anim_data.action_slot, anim_data.last_slot_identifier


def assign_action(anim_data: bpy.types.AnimData, action: bpy.types.Action | None, slot: object | None, last_slot_identifier: str) -> None:
    """Puts an action back with the slot and last slot identifier ``action_slot`` read (4.4+)."""
    anim_data.action = action
    if not hasattr(anim_data, "action_slot"):
        return
    if action is not None and slot is not None:
        anim_data.action_slot = slot
    anim_data.last_slot_identifier = last_slot_identifier


def first_layer_collection(scene: bpy.types.Scene) -> bpy.types.LayerCollection:
    """The layer collection of the first view layer of ``scene``; a scene made by
    ``bpy.data.scenes.new()`` gets it only once its view layers are synced (5.2+)."""
    layer = scene.view_layers[0]
    if layer.layer_collection is None:
        layer.update()
    return layer.layer_collection


def blend_relative_path_options() -> set[str]:
    """``options`` of a path property whose default is relative to the .blend file (``//...``): 4.5 and
    later draw such a path red unless the property says it supports that; 4.2 has no such option."""
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties:
        return {"PATH_SUPPORTS_BLEND_RELATIVE"}
    return set()


def show_scene_in_sequencer(scene: bpy.types.Scene) -> None:
    """Make the Sequencer show ``scene``'s strips. From 5.0 the Sequencer shows the workspace's
    ``sequencer_scene`` (None in a new file: an empty Sequencer), so workspaces without one get
    ``scene`` (one the artist chose is kept); before 5.0 it shows the active scene already."""
    for workspace in bpy.data.workspaces:
        if hasattr(workspace, "sequencer_scene") and workspace.sequencer_scene is None:
            workspace.sequencer_scene = scene


def action_fcurves(animation_data: bpy.types.AnimData) -> list[bpy.types.FCurve]:
    """The F-curves the active action plays on this datablock: of its assigned slot on Blender 4.4+
    (slotted actions, where ``Action.fcurves`` is gone in 5.0), of the whole action before."""
    action = animation_data.action
    if action is None:
        return []
    if hasattr(animation_data, "action_slot"):
        from bpy_extras.anim_utils import action_get_channelbag_for_slot

        channelbag = action_get_channelbag_for_slot(action, animation_data.action_slot)
        return list(channelbag.fcurves) if channelbag is not None else []
    return list(action.fcurves)
