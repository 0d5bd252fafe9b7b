"""Per-frame proxy meshes of a fit, in the fitted target's space, written as a proxy sequence
(``blender_addon/formats/proxy_sequence.py``) the add-on imports and renders conditions from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from blender_addon.formats.files import atomic_write_json
from blender_addon.formats.proxy_sequence import MANIFEST_NAME, PROXY_VERSION, write_proxy_ply

from ...progress import Progress
from .fitting import FitResult
from .model import NeuralHead
from .proxy_mesh import ProxyMesh, posed_proxy
from .similarity import rotation_matrix


def to_target_space(points: np.ndarray, similarity: dict) -> np.ndarray:
    """Inverse of the fitted similarity: model space -> the target's (scene) space."""
    rotation = rotation_matrix(torch.tensor(similarity["rotation"], dtype=torch.float64)).numpy()
    return (points - np.asarray(similarity["translation"])) @ rotation / similarity["scale"]


def canonical_head_space(canonical: np.ndarray, head: NeuralHead) -> np.ndarray:
    """Canonical model coordinates -> [-0.5, 0.5] per axis of the model box (the renderer's head space)."""
    low, high = np.asarray(head.config.box_min), np.asarray(head.config.box_max)
    return (canonical - low) / (high - low) - 0.5


def write_frame(path: Path, mesh: ProxyMesh, head: NeuralHead, similarity: dict) -> Path:
    rows = np.hstack([to_target_space(mesh.vertices, similarity), canonical_head_space(mesh.canonical, head), mesh.ambient])
    return write_proxy_ply(path, rows.astype("<f4").tobytes(), mesh.faces.astype("<i4").tobytes(), len(rows), len(mesh.faces),
                           mesh.ambient.shape[1])


def export_proxies(head: NeuralHead, result: FitResult, out_dir: str | Path, resolution: int, progress: Progress) -> Path:
    out_dir = Path(out_dir)
    frames = []
    for index, frame in enumerate(result.frames):
        progress.update(index / len(result.frames), f"proxy mesh {index + 1}/{len(result.frames)}")
        mesh = posed_proxy(head, result.identity, torch.tensor(frame.expression), resolution)
        write_frame(out_dir / f"{frame.name}.ply", mesh, head, frame.similarity)
        frames.append({"name": frame.name, "file": f"{frame.name}.ply", "expression": frame.expression})
    atomic_write_json(out_dir / MANIFEST_NAME, {"version": PROXY_VERSION, "kind": "nphm", "ambient_dims": head.config.ambient_dims,
                                                "expression_names": [f"nphm:{k}" for k in range(head.expression_dim)], "frames": frames})
    return out_dir
