"""Plain-Python cores of the add-on, without Blender: view planning, projection and visibility,
skeleton drawing, expression-code order, PNG writing, provenance, result files. They run in Blender's
own Python (3.11, or 3.13 from Blender 5.1), so they run under every Blender of the test matrix."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from blender_addon.core.demo_head_shape import IDENTITY_RANGES, IdentityParams, build_head, sample_identity
from blender_addon.core.expression_code import extract_code, rig_layout
from blender_addon.core.job_requests import follow_up, reference_image_upload, wanted_artifact
from blender_addon.core.job_watch import JobBoard, JobEvent
from blender_addon.core.png import encode_png
from blender_addon.core.pose_skeleton import LANDMARK_NAMES, draw_skeleton
from blender_addon.core.projection import project, visible_by_depth
from blender_addon.core.provenance import provenance_properties, request_from_properties
from blender_addon.core.view_plan import OrbitSettings, orbit_angles, plan_orbit_views
from blender_addon.formats.animation import read_animation
from blender_addon.formats.cameras import orbit_label
from blender_addon.formats.errors import FormatError
from blender_addon.formats.expression import DEMO_LAYOUT, DEMO_SHAPE_KEYS

pytestmark = pytest.mark.blender


def test_default_orbit_covers_the_full_circle_with_a_frontal_view_and_paper_pitch_range():
    angles = orbit_angles(OrbitSettings(views=8))
    yaws = sorted(yaw for yaw, _ in angles)
    assert yaws == pytest.approx([-180, -135, -90, -45, 0, 45, 90, 135])
    assert all(-30 <= pitch <= 30 for _, pitch in angles)
    views = plan_orbit_views(OrbitSettings(views=8), 64, 64)
    assert {view.view_class for view in views} == {"front", "side", "back"}
    assert next(view for view in views if view.yaw == 0).view_class == "front"


def test_orbit_jitter_is_seeded_and_bad_ranges_are_refused():
    assert orbit_angles(OrbitSettings(views=5, jitter_degrees=5, seed=3)) == orbit_angles(OrbitSettings(views=5, jitter_degrees=5, seed=3))
    assert orbit_angles(OrbitSettings(views=5, jitter_degrees=5, seed=3)) != orbit_angles(OrbitSettings(views=5, jitter_degrees=5, seed=4))
    with pytest.raises(FormatError, match="yaw_max"):
        orbit_angles(OrbitSettings(yaw_min=10, yaw_max=-10))


def test_head_centre_projects_to_the_image_centre_and_depth_is_the_radius():
    label = orbit_label(30.0, 10.0, width=100, height=100)
    pixels, depth = project(label, np.zeros((1, 3)), 100, 100)
    assert pixels[0] == pytest.approx([50.0, 50.0]) and depth[0] == pytest.approx(2.7)
    above, _ = project(orbit_label(0.0, 0.0, width=100, height=100), np.array([[0.0, 0.1, 0.0]]), 100, 100)
    assert above[0, 1] < 50.0  # head-space +y is up: higher points are nearer the top row


def test_points_behind_the_rendered_surface_are_hidden():
    depth_map = np.zeros((10, 10), dtype=np.float32)
    depth_map[3:7, 3:7] = 2.0
    pixels = np.array([[5.0, 5.0], [5.0, 5.0], [0.5, 0.5], [20.0, 5.0]])
    visible = visible_by_depth(pixels, np.array([2.005, 2.5, 1.0, 1.0]), depth_map)
    assert visible.tolist() == [True, False, False, False]


def test_skeleton_draws_limbs_only_between_visible_landmarks():
    points = {"eye_L": [10.0, 10.0, 1.0], "ear_L": [30.0, 10.0, 1.0], "nose_tip": [20.0, 30.0, 0.0]}
    image = draw_skeleton(points, 40, 40)
    assert image[10, 20].any()  # eye_L - ear_L limb
    assert not image[20, 15].any()  # nose_tip is hidden: no nose-eye limb
    assert not image[30, 20].any()


def test_expression_code_follows_the_layout_order_and_names_missing_entries():
    keys = {name: index / 10 for index, name in enumerate(DEMO_SHAPE_KEYS)}
    bones = {"jaw": (0.1, 0.2, 0.3), "head": (0, 0, 0), "eye_L": (0, 0, 0), "eye_R": (0, 0, 0)}
    code = extract_code(DEMO_LAYOUT, keys, bones)
    assert code[: len(DEMO_SHAPE_KEYS)] == [keys[name] for name in DEMO_SHAPE_KEYS]
    assert code[DEMO_LAYOUT.index("bone:jaw:ry")] == 0.2
    with pytest.raises(FormatError, match="pucker"):
        extract_code(DEMO_LAYOUT, {k: v for k, v in keys.items() if k != "pucker"}, bones)
    assert rig_layout(["Basis", "smile"], ["spine", "jaw"]) == ["key:smile", "bone:jaw:rx", "bone:jaw:ry", "bone:jaw:rz"]


def test_demo_heads_differ_by_seed_and_keep_their_topology_and_landmarks():
    first, second = build_head(sample_identity(1)), build_head(sample_identity(2))
    assert first.vertices.shape == second.vertices.shape and not np.allclose(first.vertices, second.vertices)
    assert set(first.landmark_vertices) | {"eye_L", "eye_R"} == set(LANDMARK_NAMES)
    assert all(np.abs(offset).max() > 0 for offset in first.shape_key_offsets.values())
    for name, (low, high) in IDENTITY_RANGES.items():
        assert low <= getattr(sample_identity(7), name) <= high
    with pytest.raises(FormatError, match="identity.nose_length"):
        build_head(IdentityParams(nose_length=9.0))


def test_png_writer_round_trips_through_pil():
    pixels = np.random.default_rng(0).integers(0, 255, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(np.array(Image.open(io.BytesIO(encode_png(pixels)))), pixels)
    grey = pixels[..., 0]
    assert np.array_equal(np.array(Image.open(io.BytesIO(encode_png(grey)))), grey)


def test_provenance_round_trips_to_a_new_request_with_another_seed():
    job = {"id": "abc", "kind": "generate-avatar", "params": {"checkpoint": "job:xyz", "seed": 4, "truncation": 0.7}}
    properties = provenance_properties(job, {"seed": 4})
    assert properties["avatar_foundry_job_id"] == "abc" and properties["avatar_foundry_seed"] == 4
    assert json.loads(properties["avatar_foundry_models"]) == ["job:xyz"]
    kind, params = request_from_properties(properties, new_seed=9)
    assert kind == "generate-avatar" and params == {"checkpoint": "job:xyz", "seed": 9, "truncation": 0.7}


def test_job_board_keeps_the_latest_state_and_the_failure_hint():
    board = JobBoard()
    board.apply(JobEvent("update", {"id": "1", "kind": "multiview", "state": "running", "created_at": "2026-01-01T00:00:00"}))
    board.apply(JobEvent("update", {"id": "1", "kind": "multiview", "state": "failed", "created_at": "2026-01-01T00:00:00",
                                    "error": {"message": "model sd15 is missing", "hint": "put it in the models folder"}}))
    assert board.jobs["1"]["state"] == "failed" and not board.active()
    assert "model sd15 is missing" in board.last_error and "models folder" in board.last_error


def test_animation_frames_are_read_per_view_in_frame_order_and_paths_may_not_escape(tmp_path):
    (tmp_path / "frames").mkdir()
    for frame in (2, 1):
        (tmp_path / "frames" / f"front_{frame}.png").write_bytes(encode_png(np.zeros((4, 4), np.uint8)))
    entries = [{"frame": f, "view": "front", "file": f"frames/front_{f}.png"} for f in (2, 1)]
    (tmp_path / "frames.json").write_text(json.dumps({"fps": 24, "width": 4, "height": 4, "frames": entries}))
    animation = read_animation(tmp_path)
    assert [frame.frame for frame in animation.sequence("front")] == [1, 2]
    (tmp_path / "frames.json").write_text(json.dumps({"fps": 24, "width": 4, "height": 4, "frames": [{"frame": 1, "view": "x", "file": "../secret.png"}]}))
    with pytest.raises(FormatError, match=r"frames\[0\].file"):
        read_animation(tmp_path)


def test_an_animation_manifest_reads_back_exactly_as_written(tmp_path):
    from blender_addon.formats.animation import Animation, AnimationFrame, frame_file, write_animation_manifest

    frames = [AnimationFrame(frame, "Front", frame_file("Front", frame)) for frame in (1, 2, 3)]
    for frame in frames:
        (tmp_path / frame.file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / frame.file).write_bytes(encode_png(np.zeros((4, 4), np.uint8)))
    written = Animation(25.0, 4, 4, frames)
    write_animation_manifest(tmp_path, written)
    assert read_animation(tmp_path) == written and frames[0].file == "frames/Front_f00001.png"
    (tmp_path / frames[2].file).unlink()
    with pytest.raises(FormatError, match=r"frames\[2\].file"):
        read_animation(tmp_path)


def test_a_backend_of_another_protocol_major_version_is_refused_naming_the_side_to_update():
    from blender_addon.formats.protocol import compatibility_problem

    assert compatibility_problem("1.0", "1.7") is None
    assert "update the add-on" in compatibility_problem("1.0", "2.0")
    assert "update the backend" in compatibility_problem("2.1", "1.3")
    assert "not an Avatar Foundry backend" in compatibility_problem("1.0", "beta")


def test_a_finished_job_names_the_setting_it_feeds_and_weights_are_not_downloaded():
    assert follow_up({"id": "42", "kind": "train-eg3d", "state": "succeeded"}) == ("avatar", "checkpoint", "job:42")
    assert follow_up({"id": "42", "kind": "multiview", "state": "succeeded"}) == ("train", "dataset", "job:42")
    assert follow_up({"id": "42", "kind": "train-eg3d", "state": "failed"}) is None
    assert follow_up({"id": "42", "kind": "generate-avatar", "state": "succeeded"}) is None
    assert not wanted_artifact("model.safetensors") and wanted_artifact("samples/tick_0001.png")


def test_the_reference_image_travels_in_a_zip_under_the_name_the_job_is_told(tmp_path):
    image = tmp_path / "Concept Art.JPG"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(image, format="JPEG")
    data, name = reference_image_upload(image)
    assert name == "reference.jpg" and zipfile.ZipFile(io.BytesIO(data)).namelist() == [name]
    with pytest.raises(FormatError, match="does not exist"):
        reference_image_upload(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FormatError, match="not an image"):
        reference_image_upload(tmp_path / "notes.txt")


def test_bone_names_of_common_rigs_are_read_as_face_parts_and_sides():
    """Mixamo, Rigify, Ready Player Me/VRM and hand-made names: part and side, case-insensitively;
    leaf and body bones are no face part (they stay out of the expression code); of a Rigify bone's
    ORG-/DEF- copies and its control only the control is a code channel, MCH- bones never."""
    from blender_addon.core.rig_naming import face_part, find_bone, side

    cases = {"mixamorig:Head": ("head", None), "mixamorig:LeftEye": ("eye", "L"), "DEF-eye.L": ("eye", "L"),
             "ORG-jaw": ("jaw", None), "RightEye": ("eye", "R"), "eye_R": ("eye", "R"), "J_Adj_L_FaceEye": ("eye", "L"),
             "lip.T.L": ("lip", "L"), "mixamorig:Neck": ("neck", None), "mixamorig:HeadTop_End": (None, None),
             "mixamorig:LeftForeArm": (None, "L"), "mixamorig:Spine2": (None, None)}
    for name, (part, which) in cases.items():
        assert (face_part(name), side(name)) == (part, which), name
    assert find_bone(["Forehead", "mixamorig:HeadTop_End", "mixamorig:Head"], "head") == "mixamorig:Head"
    assert find_bone(["mixamorig:LeftEye", "mixamorig:RightEye"], "eye", "R") == "mixamorig:RightEye"
    assert rig_layout(["Basis"], ["mixamorig:Hips", "mixamorig:HeadTop_End", "mixamorig:Head"]) == \
        ["bone:mixamorig:Head:rx", "bone:mixamorig:Head:ry", "bone:mixamorig:Head:rz"]
    rigify = ["ORG-jaw", "jaw", "DEF-jaw", "MCH-jaw_parent", "DEF-eye.L", "ORG-eye.L", "lip.T"]
    assert rig_layout([], rigify)[::3] == ["bone:jaw:rx", "bone:DEF-eye.L:rx", "bone:lip.T:rx"]
