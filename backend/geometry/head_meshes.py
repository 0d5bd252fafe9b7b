"""Head meshes and point clouds from disk (glTF/GLB, OBJ, PLY via trimesh; ``.npy`` point arrays), and
surface sampling with normals and barycentric coordinates (so that meshes with the same vertices and
faces give corresponding points).

Vertex order is kept as the file has it (no merging), because posed meshes are matched to their
neutral by vertex index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInput

MESH_SUFFIXES = (".ply", ".obj", ".glb", ".gltf")
POINT_SUFFIXES = (".npy",)


@dataclass
class HeadMesh:
    vertices: np.ndarray
    """(V, 3) float64."""
    faces: np.ndarray
    """(F, 3) int64; empty for a point cloud."""
    path: Path

    @property
    def is_point_cloud(self) -> bool:
        return len(self.faces) == 0


def read_head_geometry(path: str | Path) -> HeadMesh:
    """A triangle mesh (or a point cloud: a PLY without faces, or an (N, 3) ``.npy``)."""
    import trimesh

    source = Path(path)
    if source.suffix.lower() in POINT_SUFFIXES:
        return HeadMesh(_read_points(source), np.zeros((0, 3), np.int64), source)
    if source.suffix.lower() not in MESH_SUFFIXES:
        raise InvalidInput(f"{source.name} is not a mesh or point cloud Avatar Foundry reads",
                           f"use one of {', '.join(MESH_SUFFIXES + POINT_SUFFIXES)}", field="path")
    try:
        loaded = trimesh.load(source, force="mesh", process=False, maintain_order=True)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise InvalidInput(f"{source.name} cannot be read as a mesh ({type(error).__name__}: {str(error)[:200]})",
                           "export it again as PLY, OBJ or glTF", field="path") from None
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    if len(vertices) < 4 or not np.isfinite(vertices).all():
        raise InvalidInput(f"{source.name} holds {len(vertices)} usable vertices", "export the head mesh with its geometry", field="path")
    return HeadMesh(vertices, faces, source)


def _read_points(source: Path) -> np.ndarray:
    try:
        array = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{source.name} is not a readable .npy array ({error})", "save points as an (N, 3) float array", field="path") from None
    if array.ndim != 2 or array.shape[1] != 3 or len(array) < 4:
        raise InvalidInput(f"{source.name} has shape {array.shape}, not (N, 3) points", "save points as an (N, 3) float array", field="path")
    array = array.astype(np.float64)
    return array[np.isfinite(array).all(axis=1)]


@dataclass
class SurfaceSamples:
    faces: np.ndarray
    """(N,) face index of each sample."""
    barycentric: np.ndarray
    """(N, 3) weights of the face's three vertices."""


def sample_surface(mesh: HeadMesh, count: int, rng: np.random.Generator) -> SurfaceSamples:
    """Area-weighted random points on the mesh, as face indices + barycentric weights."""
    triangles = mesh.vertices[mesh.faces]
    areas = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1)
    if areas.sum() <= 0:
        raise InvalidInput(f"{mesh.path.name} has no surface area", "export the head with its faces", field="path")
    faces = rng.choice(len(areas), size=count, p=areas / areas.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return SurfaceSamples(faces, np.stack([1 - u - v, u, v], axis=1))


def points_at(mesh: HeadMesh, samples: SurfaceSamples) -> np.ndarray:
    return np.einsum("nk,nkd->nd", samples.barycentric, mesh.vertices[mesh.faces[samples.faces]])


def face_normals_at(mesh: HeadMesh, samples: SurfaceSamples) -> np.ndarray:
    triangles = mesh.vertices[mesh.faces[samples.faces]]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
