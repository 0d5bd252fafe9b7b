"""Synthetic training data the project makes itself: the demo head, varied in shape and look, rendered
by Cycles through the add-on's own condition render and matted on black as the multi-view stage mats
painted images. No downloaded weights anywhere: the embedded default generator, the demo's GAN when no
Stable Diffusion is registered, and the quality benchmark all learn from these renders.

Head ``k`` of a set with seed ``s`` has the identity ``sample_identity(s + k)`` and the look
``sample_appearance(s + k)`` (head proportions, jaw, chin, nose, ears, brows; skin, hair colour and
hairline, eyes), except that ``average_first`` makes head 0 the average demo head.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blender_addon.core.demo_appearance import AppearanceParams, sample_appearance
from blender_addon.core.demo_head_shape import IdentityParams, sample_identity
from blender_addon.core.view_plan import OrbitSettings
from training.datasets.rendered_characters import matted_bundle, write_gan_dataset


@dataclass(frozen=True)
class HeadSetSettings:
    heads: int = 24
    views_per_head: int = 12
    resolution: int = 64
    """Cycles renders at this size; datasets are written at ``dataset_resolution``."""
    dataset_resolution: int = 32
    seed: int = 0
    average_first: bool = True
    jitter_degrees: float = 4.0


@dataclass(frozen=True)
class TrueHead:
    """A rendered head's geometry in head space: the mesh (vertices [V, 3], triangles [F, 3]) and its landmarks [K, 3]."""

    vertices: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray

    def mesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=True)

    def save(self, path: Path) -> None:
        from blender_addon.formats.files import atomic_write

        def write(temp: Path) -> None:
            with open(temp, "wb") as stream:  # a file object: np.savez would add ".npz" to a bare temp name
                np.savez(stream, vertices=self.vertices, faces=self.faces, landmarks=self.landmarks)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> TrueHead:
        with np.load(path) as arrays:
            return cls(arrays["vertices"], arrays["faces"], arrays["landmarks"])


def head_variation(settings: HeadSetSettings, index: int) -> tuple[IdentityParams, AppearanceParams]:
    if settings.average_first and index == 0:
        return IdentityParams(), AppearanceParams()
    return sample_identity(settings.seed + index), sample_appearance(settings.seed + index)


@contextmanager
def blender_output_discarded() -> Iterator[None]:
    """Blender prints a line per pass file it writes; keep the caller's stdout readable."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def render_head(folder: Path, orbit: OrbitSettings, resolution: int, identity: IdentityParams = IdentityParams(),
                look: AppearanceParams = AppearanceParams()) -> TrueHead:
    """A fresh scene with one demo head rendered by Cycles into a condition bundle (the character as
    its ``target`` pass) in ``folder``; returns the head's true geometry."""
    import bpy

    from blender_addon.blender import rig as rig_data
    from blender_addon.blender.condition_render import BundleRequest, render_bundle
    from blender_addon.blender.demo_head import add_demo_head
    from blender_addon.core.projection import head_points_from_blender
    from blender_addon.core.view_plan import plan_orbit_views

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = add_demo_head(bpy.context, identity, look)
    views = plan_orbit_views(orbit, resolution, resolution)
    with blender_output_discarded():
        for _ in render_bundle(BundleRequest(rig.name, folder, views, resolution, resolution, target=rig.name), bpy.context.scene):
            pass
    head = rig_data.head_frame(rig)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    vertices, faces = [], []
    for obj in rig_data.rig_meshes(rig):
        mesh = obj.evaluated_get(depsgraph).to_mesh()
        world = np.array([obj.matrix_world @ vertex.co for vertex in mesh.vertices])
        mesh.calc_loop_triangles()
        faces.append(np.array([tri.vertices[:] for tri in mesh.loop_triangles]) + sum(len(v) for v in vertices))
        vertices.append(head_points_from_blender(world, head))
        obj.evaluated_get(depsgraph).to_mesh_clear()
    _, landmarks = rig_data.landmark_head_points(rig_data.evaluated_landmarks(rig_data.landmark_sources(rig), depsgraph), head)
    return TrueHead(np.concatenate(vertices), np.concatenate(faces), np.asarray(landmarks))


TRUE_HEAD_FILE = "true_head.npz"


def _rendered_head(bundle: Path, orbit: OrbitSettings, resolution: int, identity: IdentityParams, look: AppearanceParams) -> TrueHead:
    """Render the head into ``bundle`` unless an earlier run of the same set already did (the true head's
    file is written last, so its presence marks a finished render)."""
    saved = bundle / TRUE_HEAD_FILE
    if saved.is_file():
        return TrueHead.load(saved)
    head = render_head(bundle, orbit, resolution, identity, look)
    head.save(saved)
    return head


def head_bundle(folder: Path, index: int) -> Path:
    return folder / "renders" / f"head_{index:03d}"


def render_heads(folder: Path, settings: HeadSetSettings, progress=None) -> list[TrueHead]:
    """Render ``settings.heads`` varied heads into condition bundles under ``folder/renders`` (bpy and numpy
    only: this runs in any Blender's Python); returns their true geometry. Heads an earlier call rendered
    into the same folder are read back, not rendered again."""
    heads = []
    for index in range(settings.heads):
        identity, look = head_variation(settings, index)
        orbit = OrbitSettings(views=settings.views_per_head, jitter_degrees=settings.jitter_degrees, seed=settings.seed * 1000 + index)
        heads.append(_rendered_head(head_bundle(folder, index), orbit, settings.resolution, identity, look))
        if progress is not None:
            progress((index + 1) / settings.heads, f"rendered head {index + 1}/{settings.heads}")
    return heads


def head_set_dataset(folder: Path, settings: HeadSetSettings) -> Path:
    """The rendered heads' views matted on black at ``settings.dataset_resolution`` as one EG3D dataset
    in ``folder/dataset``."""
    import torch

    images, cameras = [], []
    for index in range(settings.heads):
        pixels, _, labels = matted_bundle(head_bundle(folder, index))
        images.append(torch.nn.functional.interpolate(pixels, size=settings.dataset_resolution, mode="area"))
        cameras.append(labels)
    return write_gan_dataset(folder / "dataset", torch.cat(images), torch.cat(cameras))


def render_head_set(folder: Path, settings: HeadSetSettings, progress=None) -> tuple[Path, list[TrueHead]]:
    """Render the heads (``render_heads``) and write their dataset (``head_set_dataset``)."""
    heads = render_heads(folder, settings, progress)
    return head_set_dataset(folder, settings), heads


def main(argv: list[str] | None = None) -> int:
    """``python -m training.synthetic_heads OUT [--heads N] [--views V] [--seed S] [--render-only]``: render a
    head set under ``OUT/renders`` and write its EG3D dataset to ``OUT/dataset`` (``--render-only``: only
    render, in a Python with bpy but without torch, such as Blender's)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.synthetic_heads", description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--heads", type=int, default=HeadSetSettings.heads)
    parser.add_argument("--views", type=int, default=HeadSetSettings.views_per_head)
    parser.add_argument("--seed", type=int, default=HeadSetSettings.seed)
    parser.add_argument("--render-only", action="store_true", help="write the renders, not the dataset")
    args = parser.parse_args(argv)
    settings = HeadSetSettings(heads=args.heads, views_per_head=args.views, seed=args.seed)
    if args.render_only:
        render_heads(args.out, settings)
        print(f"rendered {settings.heads} heads x {settings.views_per_head} views into {args.out / 'renders'}", flush=True)
    else:
        dataset, _ = render_head_set(args.out, settings)
        print(f"rendered {settings.heads} heads x {settings.views_per_head} views into {dataset}", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the bpy module may hang in Python's finalization once it has rendered
