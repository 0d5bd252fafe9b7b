"""Actions set aside while random expressions render, reattached exactly afterwards.

Every render evaluates the animation at the scene frame, so an active action (or NLA strip) on the
rig, its meshes or their shape keys would overwrite the random values written to its channels: the
render would show the animation while the recorded code says otherwise. While the context is open
each animated datablock has no action and its NLA is off; on exit the action, its slot (Blender 4.4+
slotted actions), the last slot identifier and the NLA switch are put back as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from ..formats.errors import FormatError
from .blender_versions import action_slot, assign_action
from .rig import animated_owners


@dataclass
class _AnimationLink:
    owner: bpy.types.ID
    action: bpy.types.Action | None
    slot: object | None
    """The action's slot (4.4+; None before)."""
    last_slot_identifier: str
    use_nla: bool


class DetachedAnimation:
    """Context manager: no action or NLA plays on the rig's datablocks while it is open."""

    def __init__(self, rig: bpy.types.Object) -> None:
        self.rig = rig
        self._links: list[_AnimationLink] = []

    def __enter__(self) -> "DetachedAnimation":
        owners = [owner for owner in animated_owners(self.rig) if owner.animation_data is not None]
        tweaking = [owner.name for owner in owners if owner.animation_data.use_tweak_mode]
        if tweaking:
            raise FormatError("rig", f"the NLA of {', '.join(repr(name) for name in tweaking)} is in tweak mode, so its "
                              "action can't be set aside for random expressions", "exit tweak mode in the NLA editor (Tab) and render again")
        for owner in owners:
            data = owner.animation_data
            self._links.append(_AnimationLink(owner, data.action, *action_slot(data), data.use_nla))
            data.use_nla = False
            data.action = None
        return self

    def __exit__(self, *exc_info) -> None:
        for link in reversed(self._links):
            data = link.owner.animation_data
            assign_action(data, link.action, link.slot, link.last_slot_identifier)
            data.use_nla = link.use_nla
        self._links.clear()
