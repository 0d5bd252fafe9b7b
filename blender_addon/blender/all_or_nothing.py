"""An edit of the file that completes or leaves no trace: when it fails midway, every datablock it
created is removed and the mode and active object are as they were, so a failed operator leaves
no half rig and no orphan materials behind."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import bpy

NOT_REMOVED_DIRECTLY = frozenset({"shape_keys", "window_managers", "screens", "workspaces", "libraries"})
"""Collections of bpy.data whose datablocks go with their owner (shape keys with their mesh) or are
Blender's own user interface."""


def _datablock_collections() -> list[bpy.types.bpy_prop_collection]:
    return [getattr(bpy.data, name) for name in dir(bpy.data)
            if name not in NOT_REMOVED_DIRECTLY and isinstance(getattr(bpy.data, name), bpy.types.bpy_prop_collection)]


def _pointers() -> set[int]:
    return {datablock.as_pointer() for collection in _datablock_collections() for datablock in collection}


@contextmanager
def all_or_nothing(context: bpy.types.Context) -> Iterator[None]:
    """Runs the block; if it raises, removes the datablocks it created and restores the mode and the
    active object, then lets the error through."""
    before = _pointers()
    view_layer = context.view_layer
    active_name = view_layer.objects.active.name if view_layer.objects.active is not None else None
    try:
        yield
    except BaseException:
        if context.mode != "OBJECT" and view_layer.objects.active is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        created = [datablock for collection in _datablock_collections() for datablock in collection
                   if datablock.as_pointer() not in before]
        bpy.data.batch_remove(created)
        view_layer.objects.active = bpy.data.objects.get(active_name) if active_name else None
        raise
