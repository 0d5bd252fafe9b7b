"""The demo's contact sheet: one picture of what every stage made, for a person to look at.

Rows: the control images of each view (pose, depth, normals, as the ControlNets see them); avatars of
3D GANs, several seeds each seen from several yaws; a rendered mesh; the animation's baked frames. Each row is
labelled; tiles are scaled to one size with nearest-neighbour sampling so that tiny demo images stay crisp.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw

from blender_addon.formats.cameras import orbit_label
from blender_addon.formats.condition_bundle import read_bundle
from blender_addon.formats.files import atomic_write

from ..avatars import to_pil_image
from ..models.eg3d.generator import load_generator
from ..multiview.condition_images import load_render_conditions

TILE = 96
LABEL_WIDTH = 150
GAP = 4
AVATAR_YAWS = (0.0, 45.0, 90.0, 180.0, -90.0)
CONTROL_KINDS = ("pose", "depth", "normal")


def condition_tiles(bundle_dir: Path) -> list[Image.Image]:
    """Pose, depth and normal control images of every view of the bundle, view after view."""
    bundle = read_bundle(bundle_dir)
    tiles = []
    for render in bundle.renders:
        kinds = [kind for kind in CONTROL_KINDS if kind in render.passes]
        controls = load_render_conditions(bundle_dir, render, kinds, TILE).controls
        tiles.extend(controls[kind] for kind in kinds)
    return tiles


@torch.no_grad()
def avatar_rows(generator_dir: Path, seeds: int, name: str = "3D GAN",
                yaws: tuple[float, ...] = AVATAR_YAWS) -> list[tuple[str, list[Image.Image]]]:
    """One row per seed (0 .. seeds-1) of the trained generator's avatar, seen from every yaw."""
    generator = load_generator(generator_dir)
    cameras = torch.tensor([orbit_label(yaw, 0.0) for yaw in yaws], dtype=torch.float32)
    rows = []
    for seed in range(seeds):
        z = torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(seed)).repeat(len(yaws), 1)
        images = generator(z, cameras)["image"]
        yaw_names = "/".join(f"{yaw:g}" for yaw in yaws)
        rows.append((f"{name}\nseed {seed}\nyaw {yaw_names}", [to_pil_image(image) for image in images]))
    return rows


def frame_tiles(frames: list[str]) -> list[Image.Image]:
    return [Image.open(frame).convert("RGB") for frame in frames]


def write_contact_sheet(path: Path, rows: list[tuple[str, list[Image.Image]]]) -> Path:
    """Labelled rows of tiles as one PNG (a row wider than the widest row wraps onto further lines)."""
    per_line = max(len(AVATAR_YAWS), 6)
    lines = [(label if index == 0 else "", tiles[index:index + per_line])
             for label, tiles in rows for index in range(0, max(len(tiles), 1), per_line)]
    width = LABEL_WIDTH + per_line * (TILE + GAP)
    sheet = Image.new("RGB", (width, len(lines) * (TILE + GAP) + GAP), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for line, (label, tiles) in enumerate(lines):
        top = GAP + line * (TILE + GAP)
        draw.text((GAP, top + TILE // 2 - 6), label, fill=(230, 230, 230))
        for column, tile in enumerate(tiles):
            sheet.paste(tile.resize((TILE, TILE), Image.NEAREST), (LABEL_WIDTH + column * (TILE + GAP), top))
    atomic_write(path, lambda temp: sheet.save(temp, format="PNG"))
    return path
