"""Condition passes rendered from the demo head with real Blender (bpy) and Cycles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blender_addon.formats.cameras import blender_camera_to_label, orbit_label, view_class
from blender_addon.formats.condition_bundle import View, read_bundle
from blender_addon.formats.errors import FormatError

bpy = pytest.importorskip("bpy")

from blender_addon.blender.blender_versions import compositor, new_compositor  # noqa: E402
from blender_addon.blender.condition_render import BundleRequest, render_bundle  # noqa: E402
from blender_addon.blender.condition_scene import ConditionScene, RenderSettings  # noqa: E402
from blender_addon.blender.demo_head import add_demo_head  # noqa: E402
from blender_addon.blender import rig as rig_data  # noqa: E402

pytestmark = pytest.mark.blender
SIZE = 64
YAWS = (0.0, 25.0, 90.0, 180.0)
FACE_LANDMARKS = ("nose_tip", "eye_L", "eye_R", "mouth_L", "mouth_R")


def _views() -> list[View]:
    return [View(f"yaw{int(yaw)}", orbit_label(yaw, 0.0, width=SIZE, height=SIZE), yaw, 0.0, view_class(yaw)) for yaw in YAWS]


def _render(out: Path, **request) -> Path:
    for _ in render_bundle(BundleRequest(rig="DemoHead", output_dir=out, views=_views(), width=SIZE, height=SIZE, **request), bpy.context.scene):
        pass
    return out


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    add_demo_head(bpy.context)
    return _render(tmp_path_factory.mktemp("bundle"))


def _load(root: Path, view: str):
    bundle = read_bundle(root)
    render = next(r for r in bundle.renders if r.view == view)
    arrays = {name: np.load(root / render.passes[name]) for name in ("depth", "normal", "canonical")}
    arrays["mask"] = np.array(Image.open(root / render.passes["mask"]))
    arrays["pose"] = np.array(Image.open(root / render.passes["pose"]))
    return render, arrays


def test_every_view_has_a_nonempty_mask_inside_the_frame(bundle_dir):
    for yaw in YAWS:
        _, passes = _load(bundle_dir, f"yaw{int(yaw)}")
        mask = passes["mask"] > 0
        assert 0.15 < mask.mean() < 0.9
        assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any()


def test_depth_is_finite_and_at_the_orbit_radius(bundle_dir):
    _, passes = _load(bundle_dir, "yaw0")
    inside = passes["mask"] > 0
    depth = passes["depth"]
    assert np.isfinite(depth).all() and (depth[~inside] == 0).all()
    assert 2.7 - 0.5 < depth[inside].min() and depth[inside].max() < 2.7 + 0.5


def test_normals_are_unit_and_face_the_camera(bundle_dir):
    _, passes = _load(bundle_dir, "yaw0")
    normals = passes["normal"][passes["mask"] > 0]
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-3)
    assert (normals[:, 2] < 0.05).mean() > 0.97  # OpenCV camera looks along +z: visible faces point back at it


def test_canonical_coordinates_lie_in_the_head_box_and_agree_across_views(bundle_dir):
    front_render, front = _load(bundle_dir, "yaw0")
    side_render, side = _load(bundle_dir, "yaw25")
    for passes in (front, side):
        assert np.abs(passes["canonical"]).max() <= 0.5
    for name in ("nose_tip", "eye_L", "mouth_L"):
        x0, y0, v0 = front_render.landmarks[name]
        x1, y1, v1 = side_render.landmarks[name]
        assert v0 == v1 == 1.0
        a = front["canonical"][int(y0), int(x0)]
        b = side["canonical"][int(y1), int(x1)]
        assert np.linalg.norm(a - b) < 0.04, name


def test_visible_landmarks_project_onto_the_mesh_and_the_skeleton_is_drawn(bundle_dir):
    render, passes = _load(bundle_dir, "yaw0")
    visible = {name: point for name, point in render.landmarks.items() if point[2] == 1.0}
    assert set(FACE_LANDMARKS) <= set(visible)
    for x, y, _ in visible.values():
        assert passes["mask"][int(y) - 1: int(y) + 2, int(x) - 1: int(x) + 2].any()
    x, y, _ = visible["nose_tip"]
    assert passes["pose"][int(y), int(x)].any()


def test_back_view_hides_the_face_landmarks(bundle_dir):
    render, passes = _load(bundle_dir, "yaw180")
    assert all(render.landmarks[name][2] == 0.0 for name in FACE_LANDMARKS)
    assert render.landmarks["ear_L"][2] == 1.0 or render.landmarks["ear_R"][2] == 1.0


def test_bundle_manifest_is_valid_and_carries_the_demo_layout(bundle_dir):
    bundle = read_bundle(bundle_dir)
    assert [view.id for view in bundle.views] == [f"yaw{int(yaw)}" for yaw in YAWS]
    assert len(bundle.frames) == 1 and len(bundle.frames[0].expression) == len(bundle.expression_names) == 20
    assert json.loads((bundle_dir / "conditions.json").read_text())["source"]["rig"] == "DemoHead"


def test_expression_code_changes_with_shape_keys_and_jaw(bundle_dir):
    rig = bpy.data.objects["DemoHead"]
    layout = rig_data.expression_layout_of(rig)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    before = rig_data.expression_code(rig, layout, depsgraph)
    keys = bpy.data.objects["DemoHead_mesh"].data.shape_keys.key_blocks
    keys["smile_L"].value = 0.7
    rig.pose.bones["jaw"].rotation_euler.x = 0.3
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    after = rig_data.expression_code(rig, layout, depsgraph)
    keys["smile_L"].value = 0.0
    rig.pose.bones["jaw"].rotation_euler.x = 0.0
    assert after[layout.index("key:smile_L")] == pytest.approx(0.7)
    assert after[layout.index("bone:jaw:rx")] == pytest.approx(0.3)
    assert before[layout.index("key:smile_L")] == 0.0


def test_condition_camera_converts_back_to_the_same_label(bundle_dir):
    rig = bpy.data.objects["DemoHead"]
    frame = rig_data.head_frame(rig)
    label = orbit_label(40.0, 15.0, width=SIZE, height=SIZE)
    with ConditionScene(bpy.context.scene, [rig], RenderSettings(SIZE, SIZE)) as scene:
        scene.place_camera(label, frame)
        bpy.context.view_layer.update()
        matrix = [list(row) for row in scene.camera.matrix_world]
        again = blender_camera_to_label(matrix, scene.camera.data.angle_x, SIZE, SIZE, frame)
    assert np.allclose(again, label, atol=1e-5)


def test_rendering_conditions_leaves_the_users_scene_untouched(bundle_dir, tmp_path):
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = 321, 123
    user_compositor = new_compositor(scene, "user compositor")
    camera = bpy.data.objects.new("user camera", bpy.data.cameras.new("user camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    before = (len(bpy.data.scenes), len(bpy.data.materials), len(bpy.data.node_groups), len(bpy.data.cameras), [layer.name for layer in scene.view_layers])
    _render(tmp_path / "again")
    assert scene.render.engine == "BLENDER_WORKBENCH"
    assert (scene.render.resolution_x, scene.render.resolution_y) == (321, 123)
    assert compositor(scene) == user_compositor and scene.camera == camera
    assert bpy.context.view_layer.material_override is None
    assert (len(bpy.data.scenes), len(bpy.data.materials), len(bpy.data.node_groups), len(bpy.data.cameras), [layer.name for layer in scene.view_layers]) == before


def test_rig_errors_name_the_problem(bundle_dir, tmp_path):
    with pytest.raises(FormatError, match="no rig is selected"):
        rig_data.find_rig(None, None)
    armature = bpy.data.objects.new("Bare", bpy.data.armatures.new("Bare"))
    mesh = bpy.data.objects.new("BareMesh", bpy.data.meshes.new("BareMesh"))
    bpy.context.scene.collection.objects.link(armature)
    bpy.context.scene.collection.objects.link(mesh)
    mesh.parent = armature
    with pytest.raises(FormatError, match="no landmark vertex groups") as error:
        next(render_bundle(BundleRequest(rig="Bare", output_dir=tmp_path, views=_views(), width=SIZE, height=SIZE), bpy.context.scene))
    assert "landmark:" in error.value.hint or "landmark:" in error.value.message


def test_deferred_dataset_renders_a_target_for_every_random_expression(bundle_dir, tmp_path):
    out = _render(tmp_path / "deferred", target="DemoHead_mesh", random_expressions=2, target_samples=2)
    bundle = read_bundle(out)
    bundle.require_pass("target")
    assert len(bundle.frames) == 2 and bundle.frames[0].expression != bundle.frames[1].expression
    target = np.array(Image.open(out / bundle.renders[0].passes["target"]))
    assert target.shape == (SIZE, SIZE, 3) and target.max() > 0
    assert bpy.data.objects["DemoHead_mesh"].data.shape_keys.key_blocks["smile_L"].value == 0.0
