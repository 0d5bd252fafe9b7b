"""NPHM fitting on held-out synthetic heads: Chamfer-L1 and normal consistency of the fitted meshes, fit time per frame.

Training data: synthetic heads the tests build (tests/fixtures/nphm_heads.py: ellipsoid heads with a nose, posed by
a jaw drop and a smile with exact correspondences), several identities; two further identities are held out, and
each is tracked over four frames of held-out expression strengths (rig in metres, placed in a scene). The fitted
proxy mesh of every frame (marching cubes) is compared with the true posed mesh: Chamfer-L1 (NPHM's definition: the
mean of accuracy and completeness, nearest-neighbour distances) in mm and as a fraction of the head's height, and
normal consistency (mean |cos| between nearest neighbours' normals, both ways). NPHM's published face-region
Chamfer-L1 of 0.53 mm (real scans, a 255-identity model) is the reference scale, not a like-for-like figure.

On a CPU this trains the tiny network briefly (the ``setting`` key says so); on a GPU the same run is a smoke test
of the device path with the fit time per frame.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from backend.models.nphm.fit_targets import read_targets
from backend.models.nphm.fitting import FitSettings, NphmFitter, prior_identity
from backend.models.nphm.model import load_head
from backend.models.nphm.proxy_export import to_target_space
from backend.models.nphm.proxy_mesh import posed_proxy
from backend.progress import SilentProgress
from tests.fixtures.nphm_heads import head_vertices, write_head
from training.nphm.config import tiny_config
from training.nphm.trainer import train_nphm

TRAIN_RADII = [(0.075, 0.11, 0.095), (0.085, 0.12, 0.1), (0.08, 0.105, 0.09), (0.09, 0.125, 0.105), (0.07, 0.1, 0.085)]
HELD_OUT_RADII = [(0.08, 0.115, 0.09), (0.086, 0.112, 0.1)]
TRAIN_EXPRESSIONS = [(0.025, 0.0), (0.0, 0.02), (0.018, 0.015), (0.01, 0.0)]
HELD_OUT_FRAMES = [(0.0, 0.0), (0.015, 0.0), (0.022, 0.006), (0.005, 0.017)]
OFFSET = (0.1, 1.5, 0.02)
MESH_RESOLUTION = 64


def _write_training_set(root: Path) -> Path:
    for index, radii in enumerate(TRAIN_RADII):
        write_head(root / f"id{index}" / "neutral.ply", radii)
        for k, (jaw, smile) in enumerate(TRAIN_EXPRESSIONS):
            write_head(root / f"id{index}" / f"expr{k}.ply", radii, jaw, smile)
    return root


def _surface_samples(vertices: np.ndarray, faces: np.ndarray, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    triangles = vertices[faces]
    cross = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    areas = np.linalg.norm(cross, axis=1)
    pick = rng.choice(len(faces), count, p=areas / areas.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    points = triangles[pick, 0] + u[:, None] * (triangles[pick, 1] - triangles[pick, 0]) + v[:, None] * (triangles[pick, 2] - triangles[pick, 0])
    return points, cross[pick] / np.maximum(areas[pick, None], 1e-12)


def _nearest(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    source_t, target_t = torch.from_numpy(source).float(), torch.from_numpy(target).float()
    distances, indices = [], []
    for chunk in source_t.split(2048):
        d = torch.cdist(chunk, target_t)
        value, index = d.min(dim=1)
        distances.append(value)
        indices.append(index)
    return torch.cat(distances).numpy(), torch.cat(indices).numpy()


def chamfer_and_normals(fitted: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray], rng) -> tuple[float, float]:
    fitted_points, fitted_normals = _surface_samples(*fitted, 10000, rng)
    true_points, true_normals = _surface_samples(*truth, 10000, rng)
    accuracy, to_true = _nearest(fitted_points, true_points)
    completeness, to_fitted = _nearest(true_points, fitted_points)
    chamfer = 0.5 * (accuracy.mean() + completeness.mean())
    consistency = 0.5 * (np.abs((fitted_normals * true_normals[to_true]).sum(-1)).mean()
                         + np.abs((true_normals * fitted_normals[to_fitted]).sum(-1)).mean())
    return float(chamfer), float(consistency)


def run(device: torch.device) -> dict:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="bench-nphm-"))
    config = replace(tiny_config(), identity_steps=800, expression_steps=800, tick_steps=200)
    started = time.perf_counter()
    train_nphm(_write_training_set(work / "heads"), work / "run", config, SilentProgress())
    training_s = time.perf_counter() - started
    head = load_head(work / "run", device)
    settings = FitSettings(identity_steps=300, frame_steps=60, points_per_step=512)
    chamfers, fractions, consistencies, frame_seconds, identity_seconds = [], [], [], [], []
    for subject, radii in enumerate(HELD_OUT_RADII):
        frames = work / f"held_out{subject}"
        for index, (jaw, smile) in enumerate(HELD_OUT_FRAMES):
            write_head(frames / f"frame_{index:04d}.ply", radii, jaw, smile, offset=OFFSET)
        fitter = NphmFitter(head, settings, prior_identity(work / "run"))
        result = fitter.fit(read_targets(frames, 20000))
        identity_seconds.append(result.frames[0].seconds)
        frame_seconds += [frame.seconds for frame in result.frames[1:]]
        for frame, (jaw, smile) in zip(result.frames, HELD_OUT_FRAMES):
            mesh = posed_proxy(head, result.identity, torch.tensor(frame.expression), MESH_RESOLUTION)
            vertices, faces = head_vertices(radii, jaw, smile)
            height = float(np.ptp(vertices[:, 1]))
            chamfer, consistency = chamfer_and_normals((to_target_space(mesh.vertices, frame.similarity), mesh.faces),
                                                       (vertices + np.asarray(OFFSET), faces), rng)
            chamfers.append(chamfer * 1000.0)
            fractions.append(chamfer / height)
            consistencies.append(consistency)
    return {
        "setting": f"tiny NPHM ({config.identity_steps}+{config.expression_steps} steps on {len(TRAIN_RADII)} identities x "
                   f"{len(TRAIN_EXPRESSIONS)} expressions), {len(HELD_OUT_RADII)} held-out identities x {len(HELD_OUT_FRAMES)} frames, "
                   f"fit {settings.identity_steps}/{settings.frame_steps} steps, meshes at {MESH_RESOLUTION}^3",
        "training_s": round(training_s, 1),
        "chamfer_l1_mm": round(float(np.mean(chamfers)), 3),
        "chamfer_l1_mm_worst_frame": round(float(np.max(chamfers)), 3),
        "chamfer_l1_fraction_of_head_height": round(float(np.mean(fractions)), 5),
        "normal_consistency": round(float(np.mean(consistencies)), 4),
        "identity_fit_s_first_frame": round(float(np.mean(identity_seconds)), 2),
        "fit_s_per_frame": round(float(np.mean(frame_seconds)), 3),
        "reference_nphm_face_chamfer_l1_mm": 0.531,
    }
