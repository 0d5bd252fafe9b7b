"""Register and unregister every Blender class of the add-on, in order, and the session timer."""

from __future__ import annotations

import bpy

from . import backend_setup, gallery, operators, panels, preferences, properties, session


def _menu_entry(self, context) -> None:
    self.layout.operator(operators.AVATAR_OT_add_demo_head.bl_idname, icon="USER")


def register() -> None:
    bpy.utils.register_class(preferences.AvatarFoundryPreferences)
    properties.register()
    for cls in operators.CLASSES + backend_setup.CLASSES + gallery.OPERATORS + panels.CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.VIEW3D_MT_add.append(_menu_entry)
    session.start()


def unregister() -> None:
    session.stop()
    bpy.types.VIEW3D_MT_add.remove(_menu_entry)
    for cls in reversed(operators.CLASSES + backend_setup.CLASSES + gallery.OPERATORS + panels.CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
    bpy.utils.unregister_class(preferences.AvatarFoundryPreferences)
