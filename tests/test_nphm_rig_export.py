"""A rig's head as NPHM data, with real bpy: random expressions with exact correspondences (a training subject,
which `train nphm` reads), the animation frame by frame (fit targets), only the head of a full-body character."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from backend.geometry.head_meshes import read_head_geometry  # noqa: E402
from blender_addon.blender.demo_head import add_demo_head  # noqa: E402
from blender_addon.blender.head_mesh_export import export_frames, export_random_expressions  # noqa: E402
from tests.fixtures.characters import add_mixamo_character  # noqa: E402

# Blender and the backend's torch in one process: these run under the main Blender only (.venv), not under
# the other Blenders of the test matrix, whose Pythons have no torch.
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _fresh() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_random_expressions_of_a_rig_train_an_nphm_and_leave_the_rig_as_it_was(tmp_path):
    """The demo rig's neutral and random expressions share vertices and faces (glTF axes: +y up, the face towards +z),
    the expressions move the face, the rig's shape keys are back afterwards, and `train nphm` trains on the folder."""
    _fresh()
    rig = add_demo_head(bpy.context)
    keys = bpy.data.objects["DemoHead_mesh"].data.shape_keys.key_blocks
    before = {key.name: key.value for key in keys}
    subject = tmp_path / "heads" / "demo"
    list(export_random_expressions(rig.name, subject, 3, seed=1))
    neutral = read_head_geometry(subject / "neutral.ply")
    posed = [read_head_geometry(subject / f"expression_{k:04d}.ply") for k in range(3)]
    assert all(np.array_equal(p.faces, neutral.faces) and p.vertices.shape == neutral.vertices.shape for p in posed)
    assert max(np.abs(p.vertices - neutral.vertices).max() for p in posed) > 0.005
    extent = np.ptp(neutral.vertices, axis=0)
    assert extent[1] > extent[0]  # taller than wide: y is up
    nose = neutral.vertices[np.argmax(neutral.vertices[:, 2])]
    assert abs(nose[0]) < 0.02  # the frontmost point (+z) is on the middle of the face
    assert {key.name: key.value for key in keys} == before

    from training.nphm.config import tiny_config
    from training.nphm.trainer import train_nphm

    result = train_nphm(tmp_path / "heads", tmp_path / "run", replace(tiny_config(), identity_steps=3, expression_steps=3))
    assert result.step == 6 and len(result.expression_codes) == 3


def test_frames_follow_the_animation_and_a_full_body_character_gives_only_its_head(tmp_path):
    """Exported frames of a keyed jaw differ where the jaw moves; the Mixamo character's export is its head and neck,
    not the body (a fraction of the character's height), and the scene frame is restored."""
    _fresh()
    rig = add_demo_head(bpy.context)
    keys = bpy.data.objects["DemoHead_mesh"].data.shape_keys.key_blocks
    for frame, value in ((1, 0.0), (3, 1.0)):
        keys["jaw_open"].value = value
        keys["jaw_open"].keyframe_insert("value", frame=frame)
    bpy.context.scene.frame_set(2)
    list(export_frames(rig.name, tmp_path / "frames", [1, 3]))
    closed, opened = (read_head_geometry(tmp_path / "frames" / f"frame_{f:04d}.ply") for f in (1, 3))
    assert np.abs(closed.vertices - opened.vertices).max() > 0.01 and bpy.context.scene.frame_current == 2

    _fresh()
    character = add_mixamo_character(eyeballs=True)  # eye bones that move something: random expressions need one
    list(export_random_expressions(character.name, tmp_path / "mixamo", 1))
    head = read_head_geometry(tmp_path / "mixamo" / "neutral.ply")
    assert np.ptp(head.vertices[:, 1]) < 0.7 and head.vertices[:, 1].min() > 1.0


def test_export_heads_command_writes_a_training_subject_from_the_demo_rig(tmp_path):
    """`avatar-foundry export-heads --demo-rig --random-expressions 2` writes the neutral and two posed heads."""
    from backend.cli import main

    assert main(["export-heads", "--demo-rig", "--random-expressions", "2", "--out", str(tmp_path / "demo")]) == 0
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["expression_0000.ply", "expression_0001.ply", "neutral.ply"]


def test_a_proxy_sequence_imports_as_per_frame_objects_with_canonical_and_ambient_attributes(tmp_path):
    """Each proxy frame becomes an object shown only on its scene frame, in Blender's axes, with the canonical and
    ambient coordinates per vertex and its NPHM code; the coordinates read back as written."""
    from blender_addon.blender.proxy_import import import_proxy_sequence
    from blender_addon.formats.files import atomic_write_json
    from blender_addon.formats.proxy_sequence import write_proxy_ply

    _fresh()
    rows = np.array([[0, 0, 0, 0.1, 0.2, 0.3, 0.01, -0.02], [1, 0, 0, 0.4, 0.2, 0.3, 0.03, 0.0],
                     [0, 1, 0, 0.1, 0.5, 0.3, 0.0, 0.05], [0, 0, 1, 0.1, 0.2, -0.4, -0.1, 0.1]], dtype="<f4")
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype="<i4")
    for name in ("frame_0002", "frame_0003"):
        write_proxy_ply(tmp_path / f"{name}.ply", rows.tobytes(), faces.tobytes(), 4, 4, 2)
    atomic_write_json(tmp_path / "proxy.json", {"version": 1, "kind": "nphm", "ambient_dims": 2, "expression_names": ["nphm:0", "nphm:1"],
                                                "frames": [{"name": n, "file": f"{n}.ply", "expression": [0.5, float(i)]}
                                                           for i, n in enumerate(("frame_0002", "frame_0003"))]})
    scene = bpy.context.scene
    collection = import_proxy_sequence(tmp_path, scene)
    second, third = bpy.data.objects["NPHM frame_0002"], bpy.data.objects["NPHM frame_0003"]
    scene.frame_set(2)
    assert not second.hide_render and third.hide_render
    scene.frame_set(3)
    assert second.hide_render and not third.hide_render
    mesh = third.data
    assert [tuple(v.co) for v in mesh.vertices][3] == pytest.approx((0.0, -1.0, 0.0))  # glTF +z (front) is Blender -y
    canonical = np.array([tuple(item.vector) for item in mesh.attributes["nphm_canonical"].data])
    ambient = np.array([tuple(item.vector) for item in mesh.attributes["nphm_ambient"].data])
    assert np.allclose(canonical, rows[:, 3:6]) and np.allclose(ambient, rows[:, 6:])
    assert list(third["avatar_foundry_expression"]) == [0.5, 1.0] and list(collection["avatar_foundry_expression_names"]) == ["nphm:0", "nphm:1"]


def test_the_import_operator_is_registered_with_the_add_on_and_imports_a_folder(tmp_path):
    """The Animate panel's Import NPHM Proxy operator imports a proxy folder; a folder without proxy.json is refused."""
    from blender_addon.blender import registration
    from blender_addon.formats.files import atomic_write_json
    from blender_addon.formats.proxy_sequence import write_proxy_ply

    _fresh()
    registration.register()
    try:
        faces = np.array([[0, 1, 2]], dtype="<i4")
        rows = np.zeros((3, 8), dtype="<f4")
        rows[1, 0], rows[2, 1] = 1.0, 1.0
        write_proxy_ply(tmp_path / "f.ply", rows.tobytes(), faces.tobytes(), 3, 1, 2)
        atomic_write_json(tmp_path / "proxy.json", {"version": 1, "kind": "nphm", "ambient_dims": 2, "expression_names": [],
                                                    "frames": [{"name": "f", "file": "f.ply", "expression": []}]})
        assert bpy.ops.avatar_foundry.import_nphm_proxy(directory=str(tmp_path)) == {"FINISHED"}
        assert "NPHM f" in bpy.data.objects
        with pytest.raises(RuntimeError, match="proxy.json"):
            bpy.ops.avatar_foundry.import_nphm_proxy(directory=str(tmp_path / "missing"))
    finally:
        registration.unregister()
