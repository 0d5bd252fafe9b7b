"""A failed operator leaves the artist's file as it was: Add Demo Head that fails midway removes
everything it had made (no half rig, no orphan mesh, material or action) and returns to Object mode."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender import demo_head  # noqa: E402

pytestmark = pytest.mark.blender


def _datablock_counts() -> dict[str, int]:
    return {name: len(getattr(bpy.data, name)) for name in dir(bpy.data)
            if isinstance(getattr(bpy.data, name), bpy.types.bpy_prop_collection)}


def _fail(*args, **kwargs):
    raise RuntimeError("injected failure")


@pytest.mark.parametrize("step", ["_bone_layout", "_add_eye"], ids=["in edit mode, building the armature", "after the mesh and materials"])
def test_a_demo_head_that_fails_midway_leaves_the_file_as_it_was(monkeypatch, step):
    """The failure is injected while the armature is in Edit Mode, or after the head mesh with its
    shape keys and both materials exist: afterwards the file has the same datablocks as before, the
    artist's object is active again in Object mode, and a second try makes a head with the plain names."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mine = bpy.data.objects.new("my object", bpy.data.meshes.new("my mesh"))
    bpy.context.scene.collection.objects.link(mine)
    bpy.context.view_layer.objects.active = mine
    before = _datablock_counts()
    monkeypatch.setattr(demo_head, step, _fail)
    with pytest.raises(RuntimeError, match="injected failure"):
        demo_head.add_demo_head(bpy.context)
    assert _datablock_counts() == before
    assert bpy.context.mode == "OBJECT" and bpy.context.view_layer.objects.active == mine
    monkeypatch.undo()
    rig = demo_head.add_demo_head(bpy.context)
    assert rig.name == "DemoHead" and bpy.data.materials.get("DemoHead_skin") is not None
    assert sorted(obj.name for obj in rig.children) == ["DemoHead_eye_L", "DemoHead_eye_R", "DemoHead_mesh"]
