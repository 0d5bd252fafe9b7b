"""Differences between the Blender versions the add-on supports, each behind one small function."""

from __future__ import annotations

import bpy


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
