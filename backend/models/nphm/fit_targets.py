"""What ``fit nphm`` fits to, as one point set per frame (in the target's own units).

- a folder of per-frame meshes (a rig's evaluated mesh exported per frame: ``frame_0001.ply``, ...) or
  point clouds (PLY without faces, ``.npy`` (N, 3)), taken in file-name order; meshes are sampled
  uniformly over their surface;
- a capture in the ``import-capture`` layout (``capture.json`` + ``<camera>/<frame>/depth.npy`` and
  ``mask.png``): each frame's depth maps from every camera that saw it, back-projected and merged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InvalidInput
from ...geometry.depth_points import backproject_depth
from ...geometry.head_meshes import MESH_SUFFIXES, POINT_SUFFIXES, points_at, read_head_geometry, sample_surface

CAPTURE_MANIFEST = "capture.json"


@dataclass
class FrameTarget:
    name: str
    points: np.ndarray
    """(N, 3) float32, target units."""


def read_targets(path: str | Path, points_per_frame: int, seed: int = 0) -> list[FrameTarget]:
    source = Path(path)
    if not source.is_dir():
        raise InvalidInput(f"{source} is not a folder", "pass a folder of per-frame meshes or point clouds, or a capture folder", field="targets")
    rng = np.random.default_rng(seed)
    if (source / CAPTURE_MANIFEST).is_file():
        frames = _capture_frames(source)
    else:
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES + POINT_SUFFIXES)
        frames = [FrameTarget(p.stem, _points_of(p, points_per_frame, rng)) for p in files]
    if not frames:
        raise InvalidInput(f"{source} holds no frames", f"put one mesh or point cloud per frame ({', '.join(MESH_SUFFIXES + POINT_SUFFIXES)}) there",
                           field="targets")
    return [FrameTarget(f.name, _subsample(f.points, points_per_frame, rng)) for f in frames]


def _points_of(path: Path, count: int, rng: np.random.Generator) -> np.ndarray:
    geometry = read_head_geometry(path)
    if geometry.is_point_cloud:
        return geometry.vertices.astype(np.float32)
    return points_at(geometry, sample_surface(geometry, count, rng)).astype(np.float32)


def _subsample(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    if len(points) <= count:
        return points.astype(np.float32)
    return points[rng.choice(len(points), count, replace=False)].astype(np.float32)


def _capture_frames(root: Path) -> list[FrameTarget]:
    from PIL import Image

    try:
        manifest = json.loads((root / CAPTURE_MANIFEST).read_text(encoding="utf-8"))
        cameras = [(str(camera["id"]), camera["label"]) for camera in manifest["cameras"]]
        indices = [int(frame["index"]) for frame in manifest["frames"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"{root / CAPTURE_MANIFEST} is not a capture manifest ({error})",
                           "see training/datasets/deferred_capture.py for the layout", field="targets") from None
    frames = []
    for index in indices:
        clouds = []
        for camera, label in cameras:
            folder = root / camera / f"{index:05d}"
            if not (folder / "depth.npy").is_file() or not (folder / "mask.png").is_file():
                continue
            depth = np.load(folder / "depth.npy", allow_pickle=False).astype(np.float64)
            with Image.open(folder / "mask.png") as image:
                mask = np.asarray(image.convert("L")) > 127
            if depth.shape != mask.shape:
                raise InvalidInput(f"{camera}/{index:05d}: depth.npy is {depth.shape}, mask.png {mask.shape}", "write both at one size", field="targets")
            clouds.append(backproject_depth(depth, mask, label))
        if clouds and sum(len(c) for c in clouds):
            frames.append(FrameTarget(f"{index:05d}", np.concatenate(clouds).astype(np.float32)))
    return frames
