"""Where Blender 4.2 LTS, 4.5 LTS and 5.x differ, bridged in one place (each bridge tests for the
API itself, not for a version number)."""

from __future__ import annotations

import bpy


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
