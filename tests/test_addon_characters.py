"""Conditions from characters artists bring (``tests/fixtures/characters.py``), rendered with real bpy and Cycles:
a Mixamo full-body skeleton, an ARKit head split across meshes, a head that is only a mesh."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blender_addon.formats.cameras import orbit_label, view_class
from blender_addon.formats.condition_bundle import View, read_bundle
from blender_addon.formats.errors import FormatError

bpy = pytest.importorskip("bpy")

from blender_addon.blender import rig as rig_data  # noqa: E402
from blender_addon.blender.blender_versions import action_slot  # noqa: E402
from blender_addon.blender.condition_render import NOTICE_PREFIX, BundleRequest, render_bundle  # noqa: E402
from blender_addon.blender.expression_pose import apply_code, moving_channels  # noqa: E402
from blender_addon.core.expression_sampling import sample_expression, varies  # noqa: E402
from blender_addon.blender.demo_head import add_demo_head  # noqa: E402
from blender_addon.core.demo_appearance import AppearanceParams  # noqa: E402
from blender_addon.blender.landmark_finder import find_landmarks, landmark_group_problems  # noqa: E402
from blender_addon.blender.detached_animation import DetachedAnimation  # noqa: E402
from tests.fixtures.blender_matrix import needs_blender  # noqa: E402
from tests.fixtures.characters import RIGIFY_CONTROLS, add_arkit_head, add_mixamo_character, add_rigify_head, add_shape_key_head  # noqa: E402

pytestmark = pytest.mark.blender
SIZE = 64


def _view(yaw: float, pitch: float = 0.0) -> View:
    name = f"yaw{int(yaw)}" + (f"_pitch{int(pitch)}" if pitch else "")
    return View(name, orbit_label(yaw, pitch, width=SIZE, height=SIZE), yaw, pitch, view_class(yaw))


def _render(rig: str, out: Path, yaws=(0.0,), **request) -> tuple[Path, list[str]]:
    """Render a bundle; returns its folder and the notices the user was shown."""
    stages = [stage for _, stage in render_bundle(BundleRequest(rig=rig, output_dir=out, views=[_view(*angles) if isinstance(angles, tuple) else _view(angles) for angles in yaws],
                                                                width=SIZE, height=SIZE, **request), bpy.context.scene)]
    return out, [stage[len(NOTICE_PREFIX):] for stage in stages if stage.startswith(NOTICE_PREFIX)]


def _passes(root: Path, view: str, frame: int | None = None):
    bundle = read_bundle(root)
    render = next(r for r in bundle.renders if r.view == view and (frame is None or r.frame == frame))
    arrays = {name: np.load(root / render.passes[name]) for name in ("depth", "normal", "canonical")}
    arrays["mask"] = np.array(Image.open(root / render.passes["mask"])) > 0
    if "target" in render.passes:
        arrays["target"] = np.array(Image.open(root / render.passes["target"])).astype(np.float64)
    return render, arrays


def _fresh() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def _rig_state(rig: bpy.types.Object) -> dict:
    """Every pose-bone and shape-key value of a rig, for before/after comparisons."""
    state = {}
    for bone in rig_data.pose_bones(rig):
        state[bone.name] = (bone.rotation_mode, tuple(bone.rotation_euler), tuple(bone.rotation_quaternion),
                            tuple(bone.rotation_axis_angle), tuple(bone.location), tuple(bone.scale))
    for mesh in rig_data.rig_meshes(rig):
        if mesh.data.shape_keys:
            state.update({(mesh.name, block.name): block.value for block in mesh.data.shape_keys.key_blocks})
    return state


# --- defects -------------------------------------------------------------------------------------

def test_per_frame_passes_follow_the_animation(tmp_path):
    """Defect 1: with the jaw keyed open over frames 1..3, the frames' depth and mask differ (they were
    identical: the render reset the frame), and the artist's scene is back on its own frame."""
    _fresh()
    rig = add_demo_head(bpy.context)
    keys = bpy.data.objects["DemoHead_mesh"].data.shape_keys.key_blocks
    for frame, value in ((1, 0.0), (3, 1.0)):
        keys["jaw_open"].value = value
        keys["jaw_open"].keyframe_insert("value", frame=frame)
    bpy.context.scene.frame_set(1)
    out, _ = _render(rig.name, tmp_path / "frames", frames=[1, 3])
    _, closed = _passes(out, "yaw0", 1)
    _, opened = _passes(out, "yaw0", 3)
    assert bpy.context.scene.frame_current == 1
    assert (closed["mask"] != opened["mask"]).sum() > 10
    assert np.abs(closed["depth"] - opened["depth"]).max() > 0.05


def test_target_without_lights_is_lit_by_the_studio_rig_and_says_so(tmp_path):
    """Defect 2: a factory scene (no light, no world) gives a target with real brightness and
    shading inside the mask, and the user is told the default studio light was used."""
    _fresh()
    rig = add_demo_head(bpy.context)
    out, notices = _render(rig.name, tmp_path / "lit", target="DemoHead_mesh", random_expressions=1, target_samples=2)
    _, passes = _passes(out, "yaw0")
    inside = passes["target"][passes["mask"]]
    assert inside.mean() > 40 and inside.std() > 5
    assert any("studio" in notice for notice in notices)


def _mouth_pixels(render, target: np.ndarray) -> np.ndarray:
    """The target's pixels (N, 3) within one corner-to-corner distance of the mouth's middle."""
    (left_x, left_y, _), (right_x, right_y, _) = render.landmarks["mouth_L"], render.landmarks["mouth_R"]
    rows, cols = np.mgrid[0:target.shape[0], 0:target.shape[1]] + 0.5
    radius = np.hypot(left_x - right_x, left_y - right_y)
    return target[(cols - (left_x + right_x) / 2) ** 2 + (rows - (left_y + right_y) / 2) ** 2 <= radius ** 2][:, :3]


def _red_pixels(pixels: np.ndarray) -> int:
    return int(((pixels[:, 0] > 1.5 * pixels[:, 1]) & (pixels[:, 0] > 60)).sum())


def _darkness(pixels: np.ndarray) -> float:
    """How far the pixels fall below a dark grey (80 of 255), summed: it grows with the mouth's dark gap."""
    return float(np.clip(80.0 - pixels.mean(axis=1), 0.0, None).sum())


def test_painted_lips_open_into_a_dark_mouth_as_the_jaw_drops(tmp_path):
    """The quality benchmark's expression character: with a lip colour, the demo head has red lips and a dark
    mouth line that grows into a dark gap when the jaw bone opens (expressions change the mouth's look, not only
    the outline); the plain look has neither."""
    painted = {}
    for name, look in (("plain", AppearanceParams()), ("lips", AppearanceParams(lip_colour=(0.45, 0.12, 0.12)))):
        _fresh()
        rig = add_demo_head(bpy.context, look=look)
        jaw = rig.pose.bones["jaw"]
        for frame, angle in ((1, 0.0), (3, 0.5)):
            jaw.rotation_euler.x = angle
            jaw.keyframe_insert("rotation_euler", frame=frame)
        out, _ = _render(rig.name, tmp_path / name, frames=[1, 3], target="DemoHead_mesh", target_samples=4)
        for frame in (1, 3):
            render, passes = _passes(out, "yaw0", frame)
            painted[name, frame] = _mouth_pixels(render, passes["target"])
    assert _red_pixels(painted["plain", 1]) == 0
    assert _darkness(painted["plain", 1]) == 0 and _darkness(painted["plain", 3]) == 0
    assert _red_pixels(painted["lips", 1]) >= 4 and _darkness(painted["lips", 1]) > 0
    assert _darkness(painted["lips", 3]) > 1.6 * _darkness(painted["lips", 1])


def test_a_target_that_renders_black_is_refused(tmp_path):
    """Defect 2: with only a light of zero strength the target is black; the render stops with an
    error naming the target and how to light it, instead of writing a black training image."""
    _fresh()
    rig = add_demo_head(bpy.context)
    dark = bpy.data.objects.new("dark", bpy.data.lights.new("dark", "SUN"))
    dark.data.energy = 0.0
    bpy.context.scene.collection.objects.link(dark)
    with pytest.raises(FormatError, match="blank inside the mask") as error:
        _render(rig.name, tmp_path / "black", target="DemoHead_mesh", random_expressions=1, target_samples=1)
    assert "light" in error.value.hint


def test_arkit_keys_are_read_and_driven_by_name_across_split_meshes():
    """Defect 3: jawOpen keyed on the face mesh shows in the code although the eyes and teeth
    carry a jawOpen too; a random expression moves a key on all three meshes together."""
    _fresh()
    rig = add_arkit_head()
    layout = rig_data.expression_layout_of(rig)
    bpy.data.objects["Wolf3D_Head"].data.shape_keys.key_blocks["jawOpen"].value = 0.8
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    code = rig_data.expression_code(rig, layout, depsgraph)
    assert code[layout.index("key:jawOpen")] == pytest.approx(0.8)
    apply_code(rig, layout, sample_expression(layout, layout, random.Random(3)))
    for key in ("jawOpen", "mouthSmileLeft", "eyeBlinkRight"):
        values = {bpy.data.objects[mesh].data.shape_keys.key_blocks[key].value for mesh in ("Wolf3D_Head", "Wolf3D_Eyes", "Wolf3D_Teeth")}
        assert len(values) == 1, key


def test_random_expressions_respect_quaternion_bones_and_restore_the_rig(tmp_path):
    """Defect 4: on a Mixamo rig (quaternion bones, ``mixamorig:Head``) random expressions rotate the
    eyes in quaternion mode, leave the head still, and afterwards every pose and key value is as before."""
    _fresh()
    rig = add_mixamo_character()
    arm = rig.pose.bones["mixamorig:LeftArm"]
    arm.rotation_quaternion = (0.9, 0.1, 0.3, 0.0)
    arm.location = (0.01, 0.0, 0.02)
    before = _rig_state(rig)
    layout = rig_data.expression_layout_of(rig)
    apply_code(rig, layout, sample_expression(layout, layout, random.Random(1)))
    eye, head = rig.pose.bones["mixamorig:LeftEye"], rig.pose.bones["mixamorig:Head"]
    assert eye.rotation_mode == head.rotation_mode == "QUATERNION"
    assert abs(eye.rotation_quaternion.angle) > 1e-3 and abs(head.rotation_quaternion.angle) < 1e-9
    _fresh()
    rig = add_mixamo_character(eyeballs=True)
    arm = rig.pose.bones["mixamorig:LeftArm"]
    arm.rotation_quaternion = (0.9, 0.1, 0.3, 0.0)
    arm.location = (0.01, 0.0, 0.02)
    before = _rig_state(rig)
    out, _ = _render(rig.name, tmp_path / "mixamo", target="MixamoRig_Body", random_expressions=2, target_samples=1)
    bundle = read_bundle(out)
    assert bundle.frames[0].expression != bundle.frames[1].expression
    assert _rig_state(rig) == before


def _links(rig: bpy.types.Object) -> dict:
    """Each animated datablock of a rig -> (action, slot identifier (4.4+; None before), NLA on)."""
    return {owner.name: (data.action, slot.identifier if (slot := action_slot(data)[0]) else None, data.use_nla)
            for owner in rig_data.animated_owners(rig) if (data := owner.animation_data) is not None}


def test_random_expressions_on_a_rig_with_an_action_render_the_recorded_code(tmp_path):
    """With an action keying the jaw bone and an NLA strip keying the jaw_open key (as an imported
    animation or the artist's keyed jaw does), random expressions still vary the jaw, each render shows exactly the recorded code
    (the same code posed by hand renders the same depth), the user is told the action was set aside,
    and afterwards the actions, their slots and every pose and key value are as before."""
    _fresh()
    rig = add_demo_head(bpy.context)
    keys = bpy.data.objects["DemoHead_mesh"].data.shape_keys
    for frame, value in ((1, 0.0), (9, 0.4)):
        rig.pose.bones["jaw"].rotation_euler = (value, 0.0, 0.0)
        rig.pose.bones["jaw"].keyframe_insert("rotation_euler", frame=frame)
        keys.key_blocks["jaw_open"].value = value
        keys.key_blocks["jaw_open"].keyframe_insert("value", frame=frame)
    held = keys.animation_data.action  # the key's animation as an NLA strip, as a glTF import leaves it
    keys.animation_data.action = None
    keys.animation_data.nla_tracks.new().strips.new("held", 1, held)
    bpy.context.scene.frame_set(5)
    before, links = _rig_state(rig), _links(rig)
    assert links == {rig.name: (rig.animation_data.action, links[rig.name][1], True), keys.name: (None, None, True)}
    out, notices = _render(rig.name, tmp_path / "random", target="DemoHead_mesh", random_expressions=2, seed=4, target_samples=1)
    assert any("set aside" in notice for notice in notices)
    assert _links(rig) == links and _rig_state(rig) == before
    bundle = read_bundle(out)
    jaw = [frame.expression[bundle.expression_names.index("bone:jaw:rx")] for frame in bundle.frames]
    assert abs(jaw[0] - jaw[1]) > 0.02
    for owner in rig_data.animated_owners(rig):
        if owner.animation_data is not None:
            owner.animation_data.action, owner.animation_data.use_nla = None, False
    sampled = [name for name in moving_channels(rig, bundle.expression_names, rig_data.head_frame(rig).size) if varies(name)]
    rng = random.Random(4)
    for frame in bundle.frames:  # the drawn expressions, not the animation's values
        assert frame.expression == pytest.approx(sample_expression(bundle.expression_names, sampled, rng), abs=1e-5)
    for frame in bundle.frames:
        apply_code(rig, bundle.expression_names, frame.expression)
        posed, _ = _render(rig.name, tmp_path / f"posed{frame.index}")
        _, by_hand = _passes(posed, "yaw0")
        _, random_render = _passes(out, "yaw0", frame.index)
        assert (by_hand["mask"] == random_render["mask"]).all()
        assert np.abs(by_hand["depth"] - random_render["depth"]).max() < 1e-4


@needs_blender((4, 4), "slotted actions")
def test_an_action_set_aside_comes_back_in_its_slot():
    """Random expressions set the rig's action aside and put it back in the same slot, with the same
    last slot identifier, so the artist's animation plays on that rig exactly as before."""
    _fresh()
    rig = add_demo_head(bpy.context)
    rig.pose.bones["jaw"].keyframe_insert("rotation_euler", frame=1)
    data = rig.animation_data
    action, slot = data.action, data.action_slot
    with DetachedAnimation(rig):
        assert data.action is None and not data.use_nla
    assert (data.action, data.action_slot, data.last_slot_identifier) == (action, slot, "OBDemoHead")


def test_code_layout_keeps_face_bones_only():
    """Defect 5: a Mixamo rig's code has the neck, head and eye bones; no ``HeadTop_End`` leaf, no
    arm or spine bones (they were always-zero or irrelevant entries)."""
    _fresh()
    rig = add_mixamo_character()
    bones = {name.split(":")[1] + ":" + name.split(":")[2] for name in rig_data.expression_layout_of(rig)}
    assert bones == {"mixamorig:Neck", "mixamorig:Head", "mixamorig:LeftEye", "mixamorig:RightEye"}


def test_random_expressions_refuse_an_nla_in_tweak_mode(tmp_path):
    """An action being edited in NLA tweak mode can't be set aside: random expressions stop with an
    error naming the rig and how to leave tweak mode, and the NLA is left as it was."""
    _fresh()
    rig = add_demo_head(bpy.context)
    rig.pose.bones["jaw"].keyframe_insert("rotation_euler", frame=1)
    held = rig.animation_data.action
    rig.animation_data.action = None
    track = rig.animation_data.nla_tracks.new()
    track.strips.new("held", 1, held).select = True
    rig.animation_data.nla_tracks.active = track
    rig.animation_data.use_tweak_mode = True
    with pytest.raises(FormatError, match="'DemoHead' is in tweak mode") as error:
        _render(rig.name, tmp_path / "tweak", target="DemoHead_mesh", random_expressions=1, target_samples=1)
    assert "exit tweak mode" in error.value.hint
    assert rig.animation_data.use_tweak_mode and rig.animation_data.action == held


def test_rigify_code_layout_holds_the_controls_and_a_random_expression_moves_the_mesh(tmp_path):
    """A Rigify-style rig (controls, their ORG- and DEF- copies driven by constraints, an MCH- helper) has
    one code channel per face part, the control: no copy, no mechanism bone; a random expression written
    to the controls changes the rendered depth and mask, and the render shows the recorded code."""
    _fresh()
    rig = add_rigify_head()
    layout = rig_data.expression_layout_of(rig)
    assert [name.rsplit(":", 1)[0] for name in layout[::3]] == [f"bone:{bone}" for bone in RIGIFY_CONTROLS]
    assert len(set(layout)) == len(layout)
    rest, _ = _render(rig.name, tmp_path / "rest")
    out, _ = _render(rig.name, tmp_path / "random", target="RigifyHead_Body", random_expressions=1, seed=2, target_samples=1)
    code = read_bundle(out).frames[0].expression
    assert code[layout.index("bone:jaw:rx")] > 0.1
    _, still = _passes(rest, "yaw0")
    _, moved = _passes(out, "yaw0")
    both = still["mask"] & moved["mask"]
    assert both.sum() > 0.3 * still["mask"].sum()  # the head is rendered (its weights are on the DEF- copies)
    assert (np.abs(still["depth"] - moved["depth"])[both] > 0.005).sum() > 5
    apply_code(rig, layout, code)
    posed, _ = _render(rig.name, tmp_path / "posed")
    _, by_hand = _passes(posed, "yaw0")
    assert (by_hand["mask"] == moved["mask"]).all() and np.abs(by_hand["depth"] - moved["depth"]).max() < 1e-4


def test_an_active_action_is_reported_only_when_it_overrides_a_pose_set_by_hand(tmp_path):
    """Defect 6 / issue 18.10: an action left active on the rig (as a glTF import leaves it) that
    overrides a pose set by hand is named in the notices with the channel and how to use one's own
    keys; the artist's own keyframes, which the current pose matches, raise no note."""
    _fresh()
    rig = add_demo_head(bpy.context)
    rig.pose.bones["jaw"].keyframe_insert("rotation_euler", frame=1)
    rig.animation_data.action.name = "Armature|mixamo.com|Layer0"
    _, notices = _render(rig.name, tmp_path / "own")
    assert not any("Armature|mixamo.com|Layer0" in notice for notice in notices)
    rig.pose.bones["jaw"].rotation_euler = (0.3, 0.0, 0.0)
    _, notices = _render(rig.name, tmp_path / "action")
    assert any("Armature|mixamo.com|Layer0" in notice and "evaluated animation" in notice
               and 'pose.bones["jaw"].rotation_euler[0]' in notice for notice in notices)


# --- capabilities --------------------------------------------------------------------------------

def test_full_body_character_is_framed_on_its_head_and_the_body_is_left_out(tmp_path):
    """A Mixamo character without landmarks renders at once: landmarks come from its eye, neck and
    head bones (the ears seen from the side), the missing ones are named; the camera orbits the head (eyes >= 15% of the width apart); the T-pose arms are in no
    pass, not even from below at the side, where the left arm passes between camera and face."""
    _fresh()
    rig = add_mixamo_character()
    out, notices = _render(rig.name, tmp_path / "body", yaws=(0.0, (90.0, -30.0)))
    assert any("eye_L from bone mixamorig:LeftEye" in notice for notice in notices)
    assert any("ear_L from the side of the head" in notice and "nose_tip from the most forward point of the face" in notice
               and "front from the eyes (bone mixamorig:LeftEye, bone mixamorig:RightEye)" in notice for notice in notices)
    assert any("could not find landmark(s)" in notice and "mouth_L" in notice and "landmark:" in notice for notice in notices)
    front, passes = _passes(out, "yaw0")
    eye_l, eye_r = front.landmarks["eye_L"], front.landmarks["eye_R"]
    assert eye_l[2] == eye_r[2] == 1.0
    assert abs(eye_l[0] - eye_r[0]) >= 0.15 * SIZE
    for name in ("eye_L", "eye_R"):
        x, y, _ = front.landmarks[name]
        assert passes["mask"][int(y) - 1: int(y) + 2, int(x) - 1: int(x) + 2].any(), name
    side, passes = _passes(out, "yaw90_pitch-30")  # the left arm points at this camera, across the face
    assert side.landmarks["eye_L"][2] == side.landmarks["ear_L"][2] == 1.0
    x, y, _ = side.landmarks["ear_L"]
    assert passes["mask"][int(y) - 1: int(y) + 2, int(x) - 1: int(x) + 2].any()
    assert 0.05 < passes["mask"].mean() < 0.9
    assert passes["depth"][passes["mask"]].min() > 2.7 - 0.6  # an arm pixel would sit right at the lens
    assert "mixamorig:LeftEye" in str(rig_data.expression_layout_of(rig))


def test_arkit_head_gets_landmarks_from_its_keys_on_the_visible_surface(tmp_path):
    """An ARKit head split across meshes: mouth corners, brows, nose and chin from the keys, eyes
    from the eye bones; each lands on the face in the mask, in a face-like arrangement."""
    _fresh()
    rig = add_arkit_head()
    out, _ = _render(rig.name, tmp_path / "arkit")
    render, passes = _passes(out, "yaw0")
    landmarks = render.landmarks
    for name in ("eye_L", "eye_R", "nose_tip", "mouth_L", "mouth_R", "brow_L", "brow_R", "chin"):
        x, y, visible = landmarks[name]
        assert visible == 1.0, name
        assert passes["mask"][int(y) - 1: int(y) + 2, int(x) - 1: int(x) + 2].any(), name
    assert landmarks["brow_L"][1] < landmarks["eye_L"][1] < landmarks["nose_tip"][1] < landmarks["mouth_L"][1] < landmarks["chin"][1]
    assert landmarks["eye_L"][0] != landmarks["eye_R"][0] and landmarks["mouth_L"][0] != landmarks["mouth_R"][0]


def test_a_mesh_only_head_is_a_rig(tmp_path):
    """A head that is only a mesh with shape keys renders: its keys are the code, its landmarks come
    from the keys, and its passes fill the frame."""
    _fresh()
    head = add_shape_key_head()
    assert rig_data.find_rig(head.name) == head
    out, _ = _render(head.name, tmp_path / "blob")
    bundle = read_bundle(out)
    assert bundle.expression_names[0] == "key:jawOpen" and len(bundle.expression_names) == 10
    render, passes = _passes(out, "yaw0")
    assert 0.15 < passes["mask"].mean() < 0.9
    assert render.landmarks["nose_tip"][2] == 1.0


def test_wrong_rig_name_lists_the_rigs_in_the_file():
    """A wrong rig name (or a plain mesh) is refused with the armatures and shape-key meshes to choose from."""
    _fresh()
    add_mixamo_character()
    add_shape_key_head()
    plain = bpy.data.objects.new("Floor", bpy.data.meshes.new("Floor"))
    bpy.context.scene.collection.objects.link(plain)
    with pytest.raises(FormatError) as error:
        rig_data.find_rig("Armature")
    assert "'MixamoRig'" in error.value.hint and "'BlobHead'" in error.value.hint
    with pytest.raises(FormatError, match="mesh without shape keys") as error:
        rig_data.find_rig("Floor")
    assert "'MixamoRig'" in error.value.hint
    assert rig_data.find_rig("MixamoRig_Body") == bpy.data.objects["MixamoRig"]


def test_misspelled_and_empty_landmark_groups_are_reported(tmp_path):
    """Manual groups that would be dropped are named with the fix, before rendering too, with the
    landmarks that are missing; Find Landmarks keeps the good ones."""
    _fresh()
    rig = add_demo_head(bpy.context)
    mesh = bpy.data.objects["DemoHead_mesh"]
    mesh.vertex_groups.new(name="landmark:eye_l").add([0], 1.0, "REPLACE")
    mesh.vertex_groups.new(name="landmark:chin_tip")
    mesh.vertex_groups.new(name="landmark:nose_tip.001")
    bpy.data.objects["DemoHead_mesh"].vertex_groups.remove(mesh.vertex_groups["landmark:ear_L"])
    mesh.vertex_groups.new(name="landmark:ear_L")
    problems = landmark_group_problems(rig_data.rig_meshes(rig))
    text = "\n".join(problems)
    assert "'landmark:eye_l'" in text and "rename it to landmark:eye_L" in text
    assert "'landmark:chin_tip'" in text and "landmark:chin" in text
    assert "'landmark:ear_L'" in text and "no weighted vertex" in text
    mesh.vertex_groups.remove(mesh.vertex_groups["landmark:chin"])
    _, notices = _render(rig.name, tmp_path / "partial")
    assert any("'landmark:eye_l'" in notice for notice in notices)
    assert any("no group for landmark(s) ear_L, chin" in notice and "Find Landmarks" in notice for notice in notices)
    report = find_landmarks(rig, bpy.context.evaluated_depsgraph_get())
    assert "nose_tip" in report.kept and "chin" not in report.kept


def test_demo_head_keeps_its_framing():
    """The demo head's box is centred on the bounds of all its meshes, and its edge (the diameter of the
    sphere around that centre holding every vertex, so wide heads fit at oblique yaws) is within 3% of
    the largest extent it was before: the demo's framing barely moved."""
    _fresh()
    rig = add_demo_head(bpy.context)
    points = []
    for mesh in rig_data.rig_meshes(rig):
        matrix = np.array(mesh.matrix_world)
        local = np.array([vertex.co for vertex in mesh.data.vertices])
        points.append(local @ matrix[:3, :3].T + matrix[:3, 3])
    points = np.concatenate(points)
    centre = (points.min(0) + points.max(0)) / 2
    frame = rig_data.head_frame(rig)
    assert np.allclose(frame.center, centre, atol=1e-6)
    assert frame.size == pytest.approx(2 * np.linalg.norm(points - centre, axis=1).max() * rig_data.HEAD_BOX_MARGIN)
    assert frame.size == pytest.approx((points.max(0) - points.min(0)).max() * rig_data.HEAD_BOX_MARGIN, rel=0.03)


def test_cli_lists_the_rigs_and_prints_the_notices(tmp_path, capsys):
    """``render-conditions --blend`` with a wrong ``--rig`` names the file's rigs; with the right one it
    renders and prints what the user must know (the landmarks it found), and no note about an action
    whose keys are the pose the file holds."""
    from backend.cli import main

    _fresh()
    rig = add_mixamo_character()
    rig.pose.bones["mixamorig:Head"].keyframe_insert("rotation_quaternion", frame=1)
    rig.animation_data.action.name = "mixamo.com"
    add_shape_key_head()
    blend = tmp_path / "character.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert main(["render-conditions", "--blend", str(blend), "--rig", "Armature", "--out", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err
    assert "no object named 'Armature'" in error and "'MixamoRig'" in error and "'BlobHead'" in error
    assert main(["render-conditions", "--blend", str(blend), "--out", str(tmp_path / "y")]) == 2
    assert "--rig 'MixamoRig'" in capsys.readouterr().err
    out = tmp_path / "bundle"
    assert main(["render-conditions", "--blend", str(blend), "--rig", "MixamoRig", "--views", "1", "--res", "32", "--out", str(out)]) == 0
    printed = capsys.readouterr().err
    assert "action 'mixamo.com'" not in printed  # the saved pose is the action's own: nothing set by hand is overridden
    assert "eye_L from bone mixamorig:LeftEye" in printed
    assert read_bundle(out).source["rig"] == "MixamoRig"
