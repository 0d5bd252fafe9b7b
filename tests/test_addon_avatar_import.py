"""An avatar's GLB, as the backend's mesh export writes it, comes into every supported Blender through
its glTF importer as one textured mesh of the right size."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.coloured_sphere import RADIUS, TEXTURE_SIZE, sphere_glb_from_backend

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.blender


def test_blenders_gltf_importer_reads_the_avatar_with_its_texture(tmp_path):
    """The artist sees one mesh with its UVs and baked texture, as large as the backend made it."""
    path = sphere_glb_from_backend(tmp_path / "sphere.glb")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_scene.gltf(filepath=str(path)) == {"FINISHED"}
    meshes = [obj for obj in bpy.data.objects if obj.type == "MESH"]
    assert len(meshes) == 1
    obj = meshes[0]
    assert obj.data.uv_layers and len(obj.data.polygons) > 1000
    images = [node.image for material in obj.data.materials for node in material.node_tree.nodes if node.type == "TEX_IMAGE"]
    assert images and images[0].size[0] == TEXTURE_SIZE
    # glTF's +y up becomes Blender's +z up: the sphere still spans +-RADIUS on every axis.
    assert np.allclose(np.array(obj.dimensions), 2 * RADIUS, atol=0.02)
