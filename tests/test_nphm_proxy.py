"""Proxy passes from a neural head: marching-cubes meshes whose vertices carry canonical and ambient coordinates,
written per frame in the fitted rig's space; and the deferred renderer's DiffusionAvatars layout for such proxies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.models.nphm.model import load_head
from backend.models.nphm.proxy_mesh import canonical_mesh, posed_proxy
from blender_addon.formats.proxy_sequence import read_proxy_manifest, read_proxy_ply
from tests.fixtures.nphm_heads import EXPRESSIONS, HEAD_RADII, head_vertices, write_head
from training.nphm.dataset import HeadMeshDataset

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _nearest(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    return np.sqrt(((points[:, None] - surface[None]) ** 2).sum(-1).min(axis=1))


def test_posed_proxy_vertices_carry_canonical_coordinates_on_the_neutral_head(trained_nphm, nphm_heads):
    """For a trained subject with its jaw-open code, the marching-cubes mesh lies on the posed head, and each vertex's
    canonical coordinates land back on the neutral head (closer to it than the posed vertices are), with 2 ambient
    coordinates per vertex; the neutral mesh lies on the neutral head."""
    from safetensors.torch import load_file

    head = load_head(trained_nphm)
    codes = load_file(str(trained_nphm / "latents.safetensors"))
    dataset = HeadMeshDataset(nphm_heads, head.config.box_min, head.config.box_max, 3000, 0.01, seed=7)
    jaw_index = next(i for i, pool in enumerate(dataset.correspondences) if pool.subject == 0 and "jaw" in str(dataset.subjects[0].posed[i].path))
    pool = dataset.correspondences[jaw_index]
    identity = codes["identity"][0]
    mesh = posed_proxy(head, identity, codes["expression"][jaw_index], 48)
    height = float(np.ptp(pool.neutral[:, 1].numpy()))
    neutral_surface, posed_surface = pool.neutral.numpy(), pool.posed.numpy()
    lower = mesh.vertices[:, 1] < np.percentile(mesh.vertices[:, 1], 25)  # the jaw region, where the expression moves the head
    assert _nearest(mesh.vertices, posed_surface).mean() < 0.02 * height
    assert _nearest(mesh.canonical[lower], neutral_surface).mean() < 0.6 * _nearest(mesh.vertices[lower], neutral_surface).mean()
    assert mesh.ambient.shape == (len(mesh.vertices), 2) and np.abs(mesh.ambient).max() < 0.5
    vertices, faces = canonical_mesh(head, identity, 48)
    assert _nearest(vertices, neutral_surface).mean() < 0.02 * height and faces.max() < len(vertices)
    # faces point outwards: the normals of the mesh point away from its centre
    triangles = vertices[faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    assert ((normals * (triangles.mean(1) - vertices.mean(0))).sum(-1) > 0).mean() > 0.9


def test_fit_writes_per_frame_proxies_in_the_rigs_space_with_their_codes(trained_nphm, tmp_path):
    """`fit nphm --proxy-resolution` writes one PLY per frame (positions on the rig's mesh, in the scene's units and
    place; canonical coordinates in [-0.5, 0.5]; 2 ambient coordinates) and a manifest with each frame's NPHM code."""
    from backend.cli import main

    offset = (0.1, 1.5, 0.02)
    frames = tmp_path / "frames"
    for index, name in enumerate(("jaw", "smile")):
        write_head(frames / f"frame_{index:04d}.ply", HEAD_RADII["cy"], *EXPRESSIONS[name], offset=offset)
    out = tmp_path / "fit"
    assert main(["fit", "nphm", "--model", str(trained_nphm), "--targets", str(frames), "--out", str(out), "--identity-steps", "150",
                 "--frame-steps", "30", "--points-per-step", "256", "--proxy-resolution", "40", "--device", "cpu"]) == 0
    manifest = read_proxy_manifest(out / "proxy")
    assert [frame["name"] for frame in manifest["frames"]] == ["frame_0000", "frame_0001"] and manifest["ambient_dims"] == 2
    fit = json.loads((out / "fit.json").read_text())
    assert manifest["frames"][1]["expression"] == fit["frames"][1]["expression"]
    proxy = read_proxy_ply(out / "proxy" / "frame_0000.ply")
    assert proxy["properties"] == ["x", "y", "z", "canonical_x", "canonical_y", "canonical_z", "ambient_0", "ambient_1"]
    rows = np.asarray(proxy["vertices"])
    vertices, _ = head_vertices(HEAD_RADII["cy"], *EXPRESSIONS["jaw"])
    rig = vertices + np.asarray(offset)
    height = np.ptp(rig[:, 1])
    assert _nearest(rows[::5, :3], rig).mean() < 0.03 * height
    assert np.all(np.abs(rows[:, 3:6]) <= 0.5)
    import trimesh

    assert len(trimesh.load(out / "proxy" / "frame_0000.ply", process=False).faces) == len(proxy["faces"])


def test_diffusion_avatars_layout_adds_ambient_channels_and_an_ambient_feature_map():
    """With ambient coordinates the ControlNet input is DiffusionAvatars' 73 channels in its order (depth, canonical,
    normals, ambient, tri-plane features, ambient-map features); ambient values are scaled from [-0.2, 0.2] and set to
    -1 outside the mask; a rig's layout is unchanged."""
    from backend.models.deferred.ambient_features import AmbientFeatures
    from backend.models.deferred.channels import ChannelLayout, encode_geometry

    layout = ChannelLayout(ambient_dims=2)
    assert layout.count == 73 and ChannelLayout().count == 55
    names = layout.names()
    assert names[:9] == ["depth", "canonical_x", "canonical_y", "canonical_z", "normal_x", "normal_y", "normal_z", "ambient_0", "ambient_1"]
    assert names[9] == "triplane_xy_0" and names[-1] == "ambient_feature_15"
    mask = torch.tensor([[[1.0, 0.0]]])
    ambient = torch.tensor([[[[0.1, -0.3], [0.1, 0.1]]]])
    encoded = encode_geometry(layout, torch.full((1, 1, 2), 2.0), torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 2, 3), mask, ambient)
    assert encoded.shape == (1, 9, 1, 2)
    assert encoded[0, 7:, 0, 0].tolist() == pytest.approx([0.5, -1.0]) and encoded[0, 7:, 0, 1].tolist() == [-1.0, -1.0]
    features = AmbientFeatures(16, 8, 0.2)(ambient, mask)
    assert features.shape == (1, 16, 1, 2) and features[0, :, 0, 1].abs().max() == 0 and features[0, :, 0, 0].abs().max() > 0
    with pytest.raises(ValueError, match="ambient coordinates"):
        encode_geometry(layout, torch.zeros(1, 1, 2), torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 2, 3), mask)


def _with_ambient(root):
    """Give every render of a sphere deferred dataset an ambient pass (values following height and expression)."""
    from blender_addon.formats.condition_bundle import read_bundle, write_bundle_manifest

    bundle = read_bundle(root)
    for render in bundle.renders:
        canonical = np.load(root / render.passes["canonical"])
        inside = np.any(canonical != 0, axis=-1, keepdims=True)
        jaw = bundle.frame(render.frame).expression[0]
        ambient = np.concatenate([canonical[..., 1:2] * 0.3, np.full_like(canonical[..., :1], 0.15 * jaw)], axis=-1) * inside
        relative = render.passes["canonical"].replace("canonical.npy", "ambient.npy")
        np.save(root / relative, ambient.astype(np.float32))
        render.passes["ambient"] = relative
    write_bundle_manifest(root, bundle)
    return root


def test_deferred_renderer_trained_on_an_nphm_proxy_uses_the_full_layout_and_refuses_passes_without_ambient(tiny_models, tmp_path):
    """A deferred dataset whose renders carry an ambient pass trains a renderer with DiffusionAvatars' layout (ambient
    channels + ambient feature map, saved in its config, the map among the fast-learning planes); baking with it needs
    the ambient pass, and a bundle without one is refused naming it."""
    from backend.errors import InvalidInput
    from backend.models.deferred.baking import bake_animation
    from backend.models.deferred.channels import ChannelLayout
    from backend.models.deferred.checkpoint import load_renderer
    from backend.models.deferred.conditions import read_render
    from backend.progress import SilentProgress
    from blender_addon.formats.condition_bundle import read_bundle
    from tests.fixtures.deferred import write_sphere_dataset
    from training.deferred.trainer import DeferredTrainOptions, train_deferred

    data = _with_ambient(write_sphere_dataset(tmp_path / "data", size=16, yaws=(0.0,), jaw_values=(0.0, 1.0)))
    options = DeferredTrainOptions(base=tiny_models.names["base"], resolution=16, steps=2, batch_size=2, checkpoint_every=100,
                                   validate_every=100, validation_renders=1, channels=ChannelLayout(triplane_channels=2),
                                   triplane_resolution=16, num_inference_steps=2)
    train_deferred(data, tmp_path / "run", options, tiny_models.store, SilentProgress())
    renderer = load_renderer(tmp_path / "run", tiny_models.store)
    assert renderer.config.channels.ambient_dims == 2 and renderer.config.channels.count == 7 + 2 + 6 + 16
    bundle = read_bundle(data)
    conditions = read_render(data, bundle, bundle.renders[1], renderer.config.expression_names)
    control = renderer.control_input(conditions)
    assert control.shape[1] == 31
    inside = conditions.mask[0] > 0.5
    assert torch.allclose(control[0, 8][inside], conditions.ambient[0, ..., 1][inside] / 0.2)
    assert any(p is renderer.ambient_features.map for p in renderer.trainable_parameter_groups()["planes"])
    plain = write_sphere_dataset(tmp_path / "plain", size=16, yaws=(0.0,), jaw_values=(0.0,), with_target=False)
    with pytest.raises(InvalidInput, match="ambient"):
        bake_animation(renderer, tmp_path / "run", plain, tmp_path / "frames", SilentProgress())
