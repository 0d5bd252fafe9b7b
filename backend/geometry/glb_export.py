"""A textured mesh as GLB (mesh, UVs, normals, base-colour texture), written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blender_addon.formats.files import atomic_write_bytes

from .texture_baking import UnwrappedMesh


def textured_trimesh(mesh: UnwrappedMesh, texture: np.ndarray):
    import trimesh
    from PIL import Image

    material = trimesh.visual.material.PBRMaterial(
        name="avatar", baseColorTexture=Image.fromarray(texture, "RGB"), metallicFactor=0.0, roughnessFactor=0.8)
    visual = trimesh.visual.TextureVisuals(uv=mesh.uvs, material=material)
    result = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, visual=visual, process=False)
    result.fix_normals()
    return result


def write_glb(path: str | Path, mesh: UnwrappedMesh, texture: np.ndarray) -> Path:
    """GLB with vertex normals; head space is glTF's frame (+y up, +z front), so no axis change."""
    data = textured_trimesh(mesh, texture).export(file_type="glb", include_normals=True)
    return atomic_write_bytes(path, data)
