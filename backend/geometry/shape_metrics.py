"""How close a reconstructed head mesh is to the true one: Chamfer distance, occupancy IoU and
landmark distance, each reported as a fraction of the true head's size (its bounding-box diagonal)
so that figures compare across heads and scales.

Both meshes must be in the same space (head space here). Chamfer is the mean of the two directed
mean nearest-surface-sample distances (the symmetric "Chamfer-L1"); occupancy IoU compares which
cells of a common grid over both meshes lie inside each (watertight meshes, filled voxelizations).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def head_extent(mesh) -> float:
    """The length every distance is divided by: the diagonal of the mesh's bounding box."""
    low, high = mesh.bounds
    return float(np.linalg.norm(high - low))


def surface_samples(mesh, count: int, seed: int = 0) -> np.ndarray:
    """``count`` points spread evenly over the surface (area-weighted), reproducible by ``seed``."""
    import trimesh

    points, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points, dtype=np.float64)


def chamfer_distance(prediction, truth, samples: int = 20000, seed: int = 0) -> float:
    """Symmetric Chamfer-L1 between two meshes' surfaces, as a fraction of the true head's extent."""
    predicted_points = surface_samples(prediction, samples, seed)
    true_points = surface_samples(truth, samples, seed + 1)
    to_truth = cKDTree(true_points).query(predicted_points)[0].mean()
    to_prediction = cKDTree(predicted_points).query(true_points)[0].mean()
    return float(0.5 * (to_truth + to_prediction) / head_extent(truth))


def occupancy_iou(prediction, truth, resolution: int = 48) -> float:
    """Intersection over union of the meshes' filled volumes on a common grid of ``resolution`` cells a side."""
    low = np.minimum(prediction.bounds[0], truth.bounds[0])
    high = np.maximum(prediction.bounds[1], truth.bounds[1])
    pitch = float((high - low).max()) / resolution
    axis = [np.arange(low[i] + pitch / 2, high[i], pitch) for i in range(3)]
    cells = np.stack(np.meshgrid(*axis, indexing="ij"), axis=-1).reshape(-1, 3)
    inside_prediction = prediction.voxelized(pitch / 2).fill().is_filled(cells)
    inside_truth = truth.voxelized(pitch / 2).fill().is_filled(cells)
    union = np.logical_or(inside_prediction, inside_truth).sum()
    return float(np.logical_and(inside_prediction, inside_truth).sum() / union) if union else 0.0


def landmark_distance(prediction, landmarks: np.ndarray, truth, samples: int = 20000) -> float:
    """Mean distance from true landmark positions [K, 3] to the predicted surface, as a fraction of the
    true head's extent: does the reconstruction have a nose, ears and a chin where the head has them."""
    surface = surface_samples(prediction, samples)
    return float(cKDTree(surface).query(np.asarray(landmarks, dtype=np.float64))[0].mean() / head_extent(truth))


def box_ellipsoid(truth, subdivisions: int = 4):
    """The baseline a model knowing only the head's bounding box would give: the ellipsoid inscribed in it."""
    import trimesh

    low, high = truth.bounds
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    sphere.apply_scale((high - low) / 2)
    sphere.apply_translation((high + low) / 2)
    return sphere
