"""A folder of head meshes for NPHM training.

Layout::

    heads/
      alice/neutral.ply          one subject: its neutral head ...
      alice/smile.ply            ... and posed heads with the neutral's vertices and faces (same count and
      alice/jaw_open.obj             order: exact correspondences, as a rig under random expressions gives)
      bob.glb                    a subject given by its neutral only (identity stage only)

Meshes are glTF/GLB, OBJ or PLY, +y up with the face towards +z (glTF's convention). All meshes are
moved by one similarity so that the mean neutral's bounding box sits centred in the model's box with a
margin (NPHM's coordinates: a head about 1 unit tall); the similarity is stored with the run.

Per mesh a pool of surface samples is drawn once; steps draw random subsets of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.errors import InvalidInput
from backend.geometry.head_meshes import (MESH_SUFFIXES, HeadMesh, face_normals_at, points_at, read_head_geometry,
                                          sample_surface)

NEUTRAL_STEM = "neutral"
BOX_FILL = 0.8
"""The mean neutral's bounding box fills this fraction of the model box along its tightest axis."""


@dataclass(frozen=True)
class Normalisation:
    """``model = (mesh - centre) * scale + box_centre``."""

    centre: tuple[float, float, float]
    scale: float
    box_centre: tuple[float, float, float]

    def apply(self, points: np.ndarray) -> np.ndarray:
        return (points - np.asarray(self.centre)) * self.scale + np.asarray(self.box_centre)

    def to_json(self) -> dict:
        return {"centre": list(self.centre), "scale": self.scale, "box_centre": list(self.box_centre)}


def fit_into_box(vertices: list[np.ndarray], box_min, box_max) -> Normalisation:
    """The similarity putting the mean bounding box of ``vertices`` centred into the box, ``BOX_FILL`` full."""
    low = np.mean([v.min(axis=0) for v in vertices], axis=0)
    high = np.mean([v.max(axis=0) for v in vertices], axis=0)
    box_min, box_max = np.asarray(box_min, dtype=np.float64), np.asarray(box_max, dtype=np.float64)
    scale = float(np.min((box_max - box_min) * BOX_FILL / np.maximum(high - low, 1e-9)))
    return Normalisation(tuple((low + high) / 2), scale, tuple((box_min + box_max) / 2))


@dataclass
class SurfacePool:
    points: torch.Tensor
    """(P, 3) in model space."""
    normals: torch.Tensor


@dataclass
class CorrespondencePool:
    neutral: torch.Tensor
    """(P, 3) points on the neutral, model space."""
    posed: torch.Tensor
    """(P, 3) the same surface points on the posed head."""
    neutral_normals: torch.Tensor
    posed_normals: torch.Tensor
    subject: int


@dataclass
class Subject:
    name: str
    neutral: HeadMesh
    posed: list[HeadMesh]


def mesh_folder_root(extracted: Path) -> Path:
    """The mesh folder inside an extracted zip: the root, or its only sub-folder when the zip held the folder itself."""
    entries = [p for p in extracted.iterdir() if not p.name.startswith(".")]
    only = entries[0] if len(entries) == 1 and entries[0].is_dir() else None
    if only is not None and not any(p.stem == NEUTRAL_STEM for p in only.iterdir()):
        return only
    return extracted


def discover_subjects(root: Path) -> list[Subject]:
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder", "pass a folder of head meshes (see 'avatar-foundry train nphm --help')", field="data")
    subjects = []
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix.lower() in MESH_SUFFIXES:
            subjects.append(Subject(entry.stem, read_head_geometry(entry), []))
        elif entry.is_dir():
            subjects.append(_subject_folder(entry))
    if not subjects:
        raise InvalidInput(f"{root} holds no head meshes", f"put {', '.join(MESH_SUFFIXES)} files (or subject folders with a neutral.*) there", field="data")
    for subject in subjects:
        if subject.neutral.is_point_cloud:
            raise InvalidInput(f"{subject.neutral.path.name} has no faces", "training needs triangle meshes (surfaces and normals)", field="data")
    return subjects


def _subject_folder(folder: Path) -> Subject:
    meshes = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    neutrals = [p for p in meshes if p.stem == NEUTRAL_STEM]
    if not neutrals:
        raise InvalidInput(f"{folder.name}/ has no {NEUTRAL_STEM}.* mesh", f"name the subject's neutral head {NEUTRAL_STEM}.ply (or .obj/.glb)", field="data")
    neutral = read_head_geometry(neutrals[0])
    posed = [read_head_geometry(p) for p in meshes if p != neutrals[0]]
    for mesh in posed:
        if mesh.vertices.shape != neutral.vertices.shape or not np.array_equal(mesh.faces, neutral.faces):
            raise InvalidInput(f"{folder.name}/{mesh.path.name} does not share the vertices and faces of {neutrals[0].name} "
                               f"({len(mesh.vertices)} vs {len(neutral.vertices)} vertices)",
                               "export posed heads from the same mesh as the neutral (same vertex order), e.g. shape keys applied", field="data")
    return Subject(folder.name, neutral, posed)


class HeadMeshDataset:
    def __init__(self, root: str | Path, box_min, box_max, pool_size: int, near_sigma: float, seed: int = 0) -> None:
        self.root = Path(root)
        self.subjects = discover_subjects(self.root)
        self.normalisation = fit_into_box([s.neutral.vertices for s in self.subjects], box_min, box_max)
        self.near_sigma = near_sigma
        rng = np.random.default_rng(seed)
        self.surfaces = [self._surface_pool(s.neutral, pool_size, rng) for s in self.subjects]
        self.correspondences = [self._correspondence_pool(s.neutral, posed, index, pool_size, rng)
                                for index, s in enumerate(self.subjects) for posed in s.posed]

    def _normalised(self, mesh: HeadMesh) -> HeadMesh:
        return HeadMesh(self.normalisation.apply(mesh.vertices), mesh.faces, mesh.path)

    def _surface_pool(self, mesh: HeadMesh, count: int, rng: np.random.Generator) -> SurfacePool:
        mesh = self._normalised(mesh)
        samples = sample_surface(mesh, count, rng)
        return SurfacePool(_tensor(points_at(mesh, samples)), _tensor(face_normals_at(mesh, samples)))

    def _correspondence_pool(self, neutral: HeadMesh, posed: HeadMesh, subject: int, count: int,
                             rng: np.random.Generator) -> CorrespondencePool:
        neutral, posed = self._normalised(neutral), self._normalised(posed)
        samples = sample_surface(neutral, count, rng)
        return CorrespondencePool(_tensor(points_at(neutral, samples)), _tensor(points_at(posed, samples)),
                                  _tensor(face_normals_at(neutral, samples)), _tensor(face_normals_at(posed, samples)), subject)

    @property
    def has_expressions(self) -> bool:
        return bool(self.correspondences)

    def neutral_vertices(self) -> list[np.ndarray]:
        return [self.normalisation.apply(s.neutral.vertices) for s in self.subjects]

    def identity_batch(self, subjects: torch.Tensor, count: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Surface points + normals of each subject (B, count, 3), and near-surface points displaced along the normal."""
        points, normals = [], []
        for index in subjects.tolist():
            pool = self.surfaces[index]
            pick = torch.randint(len(pool.points), (count,), generator=generator)
            points.append(pool.points[pick])
            normals.append(pool.normals[pick])
        return {"surface": torch.stack(points), "normals": torch.stack(normals)}

    def expression_batch(self, items: torch.Tensor, count: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Corresponding neutral/posed points (B, count, 3): half on the surface, half moved off it along each
        side's normal by the same distance (the deformation near the surface, as NPHM samples it)."""
        neutral, posed, subjects = [], [], []
        for index in items.tolist():
            pool = self.correspondences[index]
            pick = torch.randint(len(pool.neutral), (count,), generator=generator)
            offset = torch.randn(count, 1, generator=generator) * self.near_sigma
            offset[: count // 2] = 0.0
            neutral.append(pool.neutral[pick] + offset * pool.neutral_normals[pick])
            posed.append(pool.posed[pick] + offset * pool.posed_normals[pick])
            subjects.append(pool.subject)
        return {"neutral": torch.stack(neutral), "posed": torch.stack(posed), "subject": torch.tensor(subjects)}


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
