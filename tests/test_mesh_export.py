"""Mesh export: an analytic density becomes a closed, correctly sized, correctly textured GLB that
trimesh reads back (every Blender's glTF importer: ``test_addon_avatar_import.py``); a generator becomes
a full avatar folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.avatars import AvatarSettings, GeneratorField, StyleRequest, generate_avatar, style_code
from backend.errors import InvalidInput
from backend.geometry.mesh_extraction import MeshSettings, grid_points, mesh_from_field
from backend.geometry.texture_baking import TextureSettings
from backend.models.eg3d.generator import TriplaneGenerator, tiny_generator_config
from tests.fixtures.coloured_sphere import RADIUS, ColouredSphere, write_sphere_glb

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def sphere_glb(tmp_path_factory):
    path = tmp_path_factory.mktemp("glb") / "sphere.glb"
    return write_sphere_glb(path), path


def test_analytic_sphere_becomes_a_closed_mesh_of_the_right_radius(sphere_glb):
    mesh, _ = sphere_glb
    assert mesh.is_watertight
    assert mesh.volume > 0  # faces wound outwards
    distances = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(distances - RADIUS).max() < 0.01  # under half a grid cell (1/48)
    assert abs(mesh.volume - 4 / 3 * np.pi * RADIUS ** 3) / (4 / 3 * np.pi * RADIUS ** 3) < 0.03


def test_glb_loads_back_with_trimesh_with_uvs_and_the_baked_colours(sphere_glb):
    import trimesh

    _, path = sphere_glb
    loaded = trimesh.load(path, force="mesh")
    assert loaded.visual.uv.shape == (len(loaded.vertices), 2)
    merged = loaded.copy()
    merged.merge_vertices(merge_tex=True, merge_norm=True)
    assert merged.is_watertight  # only UV seams split vertices
    image = np.asarray(loaded.visual.material.baseColorTexture.convert("RGB"), dtype=np.float32) / 255.0
    size = image.shape[0]
    uv = loaded.visual.uv
    texel = image[np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1), np.clip((uv[:, 0] * size).astype(int), 0, size - 1)]
    errors = np.abs(texel - ColouredSphere().color(np.asarray(loaded.vertices)))
    assert np.median(errors) < 0.02 and np.percentile(errors, 90) < 0.05


def test_flat_density_is_refused_with_a_hint():
    class Empty:
        def density(self, points):
            return np.zeros(len(points))

        def color(self, points):
            return np.zeros((len(points), 3))

    with pytest.raises(InvalidInput, match="never crosses"):
        mesh_from_field(Empty(), MeshSettings(grid_resolution=16))


def test_a_field_too_faint_for_the_level_gets_a_surface_enclosing_the_fallback_fill_and_says_so():
    class Faint(ColouredSphere):
        """The sphere's density scaled below EG3D's level 10, as a briefly trained generator gives."""

        def density(self, points):
            return super().density(points) / 100.0

    settings = MeshSettings(grid_resolution=32, max_faces=None, fallback_fill=0.1)
    mesh = mesh_from_field(Faint(), settings)
    assert mesh.metadata["level_fallback"] and mesh.metadata["level"] < 1.0
    assert mesh.is_watertight and mesh.volume == pytest.approx(0.1, rel=0.15)
    assert {"level": 10.0, "level_fallback": False}.items() <= mesh_from_field(ColouredSphere(), settings).metadata.items()
    with pytest.raises(InvalidInput, match="never crosses"):
        mesh_from_field(Faint(), MeshSettings(grid_resolution=16, fallback_fill=None))


def test_generate_avatar_writes_previews_glb_and_json(tmp_path):
    torch.manual_seed(0)
    generator = TriplaneGenerator(tiny_generator_config()).eval()
    ws = style_code(generator, StyleRequest(seed=5), torch.device("cpu"))
    level = float(np.median(GeneratorField(generator, ws).density(grid_points(24, 1.0))))
    settings = AvatarSettings(style=StyleRequest(seed=5), preview_yaws=(0.0, 180.0),
                              mesh=MeshSettings(grid_resolution=24, level=level, max_faces=2000), texture=TextureSettings(size=64))
    document = generate_avatar(generator, settings, tmp_path, checkpoint="job:abc")
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == ["yaw_+000.png", "yaw_+180.png"]
    assert (tmp_path / "avatar.glb").stat().st_size > 0
    saved = json.loads((tmp_path / "avatar.json").read_text())
    assert saved == json.loads(json.dumps(document))
    assert saved["seed"] == 5 and saved["checkpoint"] == "job:abc"
    assert np.array(saved["w"]).shape == (generator.num_ws, generator.w_dim)
    # The saved w reproduces the same avatar.
    again = style_code(generator, StyleRequest(w_file=str(tmp_path / "avatar.json")), torch.device("cpu"))
    assert torch.allclose(again, ws)


def test_a_style_code_of_the_wrong_shape_is_refused_naming_the_field(tmp_path):
    generator = TriplaneGenerator(tiny_generator_config())
    np.save(tmp_path / "w.npy", np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(InvalidInput) as caught:
        style_code(generator, StyleRequest(w_file=str(tmp_path / "w.npy")), torch.device("cpu"))
    assert caught.value.field == "w" and "same checkpoint" in caught.value.hint
    np.save(tmp_path / "w1.npy", np.ones(generator.w_dim, dtype=np.float32))
    ws = style_code(generator, StyleRequest(w_file=str(tmp_path / "w1.npy")), torch.device("cpu"))
    assert ws.shape == (1, generator.num_ws, generator.w_dim) and torch.all(ws == 1)


def test_faster_mesh_steps_keep_the_same_largest_part_decimation_and_grid():
    """Mesh export keeps the largest part and decimates through faster steps (a noisy surface took minutes):
    the exported mesh is the one the plain steps give, face for face."""
    import trimesh
    from skimage import measure

    from backend.geometry.mesh_extraction import largest_component, unique_rows

    rng = np.random.default_rng(0)
    field = rng.standard_normal((24, 24, 24)).astype(np.float32)
    vertices, faces, _, _ = measure.marching_cubes(field, level=0.8)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=True)
    parts = mesh.split(only_watertight=False)
    assert len(parts) > 1, "the noise surface must have several parts for this comparison"
    plain = max(parts, key=lambda part: len(part.faces))
    kept = largest_component(mesh)
    assert np.array_equal(kept.faces, plain.faces) and np.allclose(kept.vertices, plain.vertices)
    rows = rng.integers(-40, 40, (5000, 3))
    assert np.array_equal(unique_rows(rows), np.unique(rows, axis=0))
    unique, inverse, counts = unique_rows(rows, return_inverse=True, return_counts=True)
    expected = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    assert np.array_equal(inverse, expected[1].ravel()) and np.array_equal(counts, expected[2])
    wide = np.array([[0, 0, 0], [2 ** 40, 2 ** 40, 1], [0, 0, 0]])  # spans beyond 64 bits: the plain path
    assert np.array_equal(unique_rows(wide), np.unique(wide, axis=0))
