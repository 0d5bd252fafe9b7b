"""Condition passes of an imported neural-head (NPHM) proxy sequence, rendered with real Blender and Cycles: the
canonical and ambient passes show the frame objects' ``nphm_canonical`` / ``nphm_ambient`` attributes, each frame
carries its own NPHM code, and the deferred renderer trains on the bundle with DiffusionAvatars' 73-channel layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blender_addon.formats.cameras import orbit_label, view_class
from blender_addon.formats.condition_bundle import View, read_bundle
from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write_json
from blender_addon.formats.proxy_sequence import MANIFEST_NAME, PROXY_VERSION, write_proxy_ply
from tests.fixtures.addon import addon_settings as addon  # noqa: F401 (a fixture)
from tests.fixtures.proxy_training import train_one_step_in_backend

bpy = pytest.importorskip("bpy")

from blender_addon.blender.condition_render import BundleRequest, render_bundle  # noqa: E402
from blender_addon.blender.proxy_import import import_proxy_sequence  # noqa: E402

pytestmark = pytest.mark.blender
SIZE = 32
YAWS = (0.0, 90.0)
CENTRE = np.array([0.0, 1.6, 0.0])
"""The proxy head's centre in the files' (glTF) axes: Blender's (0, 0, 1.6)."""
RADIUS = 0.1
CANONICAL_SCALE = 0.25 / RADIUS
"""Canonical coordinates of the sphere: its neutral positions scaled into a sphere of radius 0.25 in head space."""
AMBIENT_SLOPE = 0.4
"""ambient_0 = AMBIENT_SLOPE x canonical_y (in [-0.1, 0.1]); ambient_1 is one value per frame."""
FRAMES = {1: {"shift": 0.0, "ambient_1": -0.08, "code": [0.0, 0.3]},
          2: {"shift": 0.01, "ambient_1": 0.12, "code": [0.9, -0.4]}}


def _sphere(segments: int = 32, rings: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A unit UV sphere (poles on y) with outward triangles."""
    points = [(0.0, 1.0, 0.0)]
    for ring in range(1, rings):
        polar = math.pi * ring / rings
        points += [(math.sin(polar) * math.cos(2 * math.pi * s / segments), math.cos(polar),
                    math.sin(polar) * math.sin(2 * math.pi * s / segments)) for s in range(segments)]
    points.append((0.0, -1.0, 0.0))
    faces, bottom = [], len(points) - 1

    def at(ring: int, s: int) -> int:
        return 1 + (ring - 1) * segments + s % segments

    for s in range(segments):
        faces.append((0, at(1, s + 1), at(1, s)))
        faces.append((bottom, at(rings - 1, s), at(rings - 1, s + 1)))
        for ring in range(1, rings - 1):
            faces += [(at(ring, s), at(ring, s + 1), at(ring + 1, s)), (at(ring, s + 1), at(ring + 1, s + 1), at(ring + 1, s))]
    return np.asarray(points), np.asarray(faces)


def write_sphere_proxy(folder: Path) -> Path:
    """A proxy sequence in the format ``fit nphm --proxy-resolution`` writes: the sphere per frame (shifted in
    frame 2), canonical = its neutral position in head space, ambient from canonical height and the frame."""
    unit, faces = _sphere()
    frames = []
    for index, spec in FRAMES.items():
        canonical = unit * 0.25
        ambient = np.stack([AMBIENT_SLOPE * canonical[:, 1], np.full(len(unit), spec["ambient_1"])], axis=1)
        positions = CENTRE + unit * RADIUS + np.array([spec["shift"], 0.0, 0.0])
        rows = np.hstack([positions, canonical, ambient]).astype("<f4")
        name = f"frame_{index:04d}"
        write_proxy_ply(folder / f"{name}.ply", rows.tobytes(), faces.astype("<i4").tobytes(), len(rows), len(faces), 2)
        frames.append({"name": name, "file": f"{name}.ply", "expression": spec["code"]})
    atomic_write_json(folder / MANIFEST_NAME, {"version": PROXY_VERSION, "kind": "nphm", "ambient_dims": 2,
                                               "expression_names": ["nphm:0", "nphm:1"], "frames": frames})
    return folder


def _views() -> list[View]:
    return [View(f"yaw{int(yaw)}", orbit_label(yaw, 0.0, width=SIZE, height=SIZE), yaw, 0.0, view_class(yaw)) for yaw in YAWS]


@pytest.fixture(scope="module")
def proxy_bundle(tmp_path_factory) -> Path:
    """The sphere proxy imported into an empty scene, a target sphere where it is, 2 frames x 2 views rendered."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    collection = import_proxy_sequence(write_sphere_proxy(tmp_path_factory.mktemp("proxy")), bpy.context.scene)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=RADIUS, location=(0.0, 0.0, 1.6))
    bpy.context.active_object.name = "Character"
    out = tmp_path_factory.mktemp("bundle")
    request = BundleRequest(rig="", output_dir=out, views=_views(), width=SIZE, height=SIZE, frames=[1, 2], target="Character",
                            target_samples=4, proxy=collection.name)
    stages = [stage for _, stage in render_bundle(request, bpy.context.scene)]
    assert stages[-1].startswith("wrote 4 renders")
    return out


def _passes(root: Path, view: str, frame: int) -> dict[str, np.ndarray]:
    bundle = read_bundle(root)
    render = next(r for r in bundle.renders if r.view == view and r.frame == frame)
    arrays = {name: np.load(root / render.passes[name]) for name in ("depth", "normal", "canonical", "ambient")}
    arrays["mask"] = np.array(Image.open(root / render.passes["mask"])) > 0
    return arrays


def test_every_proxy_render_has_the_geometry_ambient_and_target_passes_and_no_pose(proxy_bundle):
    bundle = read_bundle(proxy_bundle)
    assert len(bundle.renders) == 4
    for render in bundle.renders:
        assert set(render.passes) == {"depth", "normal", "canonical", "mask", "ambient", "target"} and not render.landmarks
    assert bundle.source["proxy_kind"] == "nphm" and bundle.expression_names == ["nphm:0", "nphm:1"]


def test_the_ambient_pass_holds_the_frames_ambient_attribute_where_the_head_is(proxy_bundle):
    """Inside the mask: ambient_1 is the frame's value (not zero), ambient_0 follows the canonical height exactly as
    the attribute does and spans the attribute's range; outside the mask both are 0."""
    for frame, spec in FRAMES.items():
        for yaw in YAWS:
            passes = _passes(proxy_bundle, f"yaw{int(yaw)}", frame)
            inside, ambient, canonical = passes["mask"], passes["ambient"], passes["canonical"]
            assert ambient.shape == (SIZE, SIZE, 2) and 0.1 < inside.mean() < 0.9
            assert np.abs(ambient[inside][:, 1] - spec["ambient_1"]).max() < 1e-4
            assert np.abs(ambient[inside][:, 0] - AMBIENT_SLOPE * canonical[inside][:, 1]).max() < 1e-4
            assert ambient[inside][:, 0].min() >= -0.1 - 1e-4 and ambient[inside][:, 0].max() <= 0.1 + 1e-4
            assert np.ptp(ambient[inside][:, 0]) > 0.1
            assert not ambient[~inside].any()


def test_the_canonical_pass_is_the_nphm_canonical_attribute_in_head_space(proxy_bundle):
    """The canonical pass holds the attribute's values as they are (a sphere of radius 0.25 in head space, whatever the
    head box and the frame's shift): the front view looks at its front (+z) and the side view at its side (x)."""
    for frame in FRAMES:
        front, side = (_passes(proxy_bundle, f"yaw{int(yaw)}", frame) for yaw in YAWS)
        for passes in (front, side):
            radii = np.linalg.norm(passes["canonical"][passes["mask"]], axis=1)
            assert radii.min() > 0.24 and radii.max() < 0.2505
        centre = SIZE // 2
        assert front["canonical"][centre, centre, 2] > 0.23
        assert abs(side["canonical"][centre, centre, 0]) > 0.23


def test_each_frame_carries_its_own_nphm_code(proxy_bundle):
    bundle = read_bundle(proxy_bundle)
    assert bundle.frame(1).expression == pytest.approx(FRAMES[1]["code"])
    assert bundle.frame(2).expression == pytest.approx(FRAMES[2]["code"])


def test_a_frame_the_proxy_does_not_hold_is_refused_naming_the_frames_it_holds(proxy_bundle, tmp_path):
    collection = next(c for c in bpy.data.collections if c.name.startswith("NPHM proxy"))
    request = BundleRequest(rig="", output_dir=tmp_path, views=_views(), width=SIZE, height=SIZE, frames=[2, 3], proxy=collection.name)
    with pytest.raises(FormatError, match="no frame 3.*frames 1-2"):
        list(render_bundle(request, bpy.context.scene))


def test_the_deferred_renderer_trains_on_the_proxy_bundle_with_the_73_channel_layout(proxy_bundle, tmp_path):
    trained = train_one_step_in_backend(proxy_bundle, tmp_path)
    assert trained["count"] == 73 and trained["ambient_dims"] == 2
    assert trained["names"][7:9] == ["ambient_0", "ambient_1"] and trained["expression_names"] == ["nphm:0", "nphm:1"]
    assert trained["steps"] == 1 and all(math.isfinite(loss) for loss in trained["losses"])


def test_the_animate_proxy_choice_drives_the_deferred_dataset_and_greys_buttons_with_the_reason(addon, tmp_path, monkeypatch):
    """Proxy: Neural head without a proxy greys Render Deferred Dataset and Animate with the reason; Import NPHM Proxy
    chooses the imported sequence; the deferred dataset is then every proxy frame with its ambient pass and code."""
    from blender_addon.blender.session import session

    monkeypatch.setattr(session(), "health", {"device_name": "CPU", "version": "0.1.0", "protocol_version": "1.0"})
    addon.animate.proxy = "NPHM"
    with pytest.raises(RuntimeError, match="Proxy is Neural head but none is chosen"):
        bpy.ops.avatar_foundry.render_deferred_dataset()
    with pytest.raises(RuntimeError, match="Proxy is Neural head but none is chosen"):
        bpy.ops.avatar_foundry.animate()
    addon.animate.proxy = "RIG"
    assert bpy.ops.avatar_foundry.import_nphm_proxy(directory=str(write_sphere_proxy(tmp_path / "proxy"))) == {"FINISHED"}
    assert addon.animate.proxy == "NPHM" and addon.animate.nphm_proxy.name.startswith("NPHM proxy")
    with pytest.raises(RuntimeError, match="pick the Target"):
        bpy.ops.avatar_foundry.render_deferred_dataset()
    bpy.ops.mesh.primitive_uv_sphere_add(radius=RADIUS, location=(0.0, 0.0, 1.6))
    conditions = addon.conditions
    conditions.views, conditions.resolution = 2, 16
    addon.deferred.target, addon.deferred.output_dir = bpy.context.active_object, str(tmp_path / "dataset")
    assert bpy.ops.avatar_foundry.render_deferred_dataset() == {"FINISHED"}
    bundle = read_bundle(tmp_path / "dataset")
    assert [frame.index for frame in bundle.frames] == [1, 2] and len(bundle.renders) == 4
    assert all("ambient" in render.passes and "target" in render.passes for render in bundle.renders)
    assert bundle.frame(2).expression == pytest.approx(FRAMES[2]["code"])
    assert addon.deferred.last_bundle == str(tmp_path / "dataset")


def test_the_neural_head_settings_make_valid_train_and_fit_requests_and_a_finished_train_fills_in_the_model(addon):
    from blender_addon.core.job_requests import follow_up
    from tests.fixtures.blender_matrix import validated_job_params

    animate = addon.animate
    with pytest.raises(FormatError, match="Train Neural Head"):
        animate.fit_nphm_params()
    assert follow_up({"state": "succeeded", "kind": "train-nphm", "id": "abc"}) == ("animate", "nphm_model", "job:abc")
    animate.nphm_model, animate.nphm_config, animate.nphm_steps, animate.proxy_resolution = "job:abc", "tiny", 50, 48
    train, fit = validated_job_params(("train-nphm", animate.train_nphm_params()), ("fit-nphm", animate.fit_nphm_params()))
    assert train["config"] == "tiny" and train["identity_steps"] == train["expression_steps"] == 50
    assert fit["model"] == "job:abc" and fit["proxy_resolution"] == 48 and fit["frame_steps"] == animate.fit_frame_steps


def test_a_fit_jobs_downloaded_proxy_is_imported_as_the_neural_head_proxy(addon, tmp_path):
    from blender_addon.blender.importers import import_result, imported_objects

    write_sphere_proxy(tmp_path / "job" / "proxy")
    job = {"id": "fit1", "kind": "fit-nphm", "state": "succeeded", "params": {}}
    summary = import_result(tmp_path / "job", job, bpy.context.scene)
    assert "2 neural head proxy frames" in summary
    assert addon.animate.proxy == "NPHM" and len(addon.animate.nphm_proxy.objects) == 2
    assert sorted(obj.name for obj in imported_objects(bpy.context.scene, "fit1")) == ["NPHM frame_0001", "NPHM frame_0002"]
