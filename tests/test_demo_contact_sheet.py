"""The demo's contact sheet shows every stage's result: the views' control images, the trained GAN's
avatars from several seeds and yaws (different seeds give different heads), and the baked frames."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from backend.demo.contact_sheet import AVATAR_YAWS, GAP, LABEL_WIDTH, TILE, avatar_rows, condition_tiles, write_contact_sheet
from backend.models.eg3d.generator import TriplaneGenerator, save_generator, tiny_generator_config
from tests.fixtures.server import write_condition_bundle


def tile_at(sheet: np.ndarray, line: int, column: int) -> np.ndarray:
    top, left = GAP + line * (TILE + GAP), LABEL_WIDTH + column * (TILE + GAP)
    return sheet[top:top + TILE, left:left + TILE]


def test_contact_sheet_rows_hold_conditions_avatars_and_frames(tmp_path):
    torch.manual_seed(0)
    save_generator(tmp_path / "gan", TriplaneGenerator(tiny_generator_config()))
    bundle = write_condition_bundle(tmp_path / "bundle", views=2)
    frames = []
    for index in range(3):
        path = tmp_path / f"frame_{index}.png"
        Image.fromarray(np.full((32, 32, 3), 60 * index, np.uint8)).save(path)
        frames.append(Image.open(path).convert("RGB"))
    controls = condition_tiles(bundle)
    avatars = avatar_rows(tmp_path / "gan", seeds=2)
    path = write_contact_sheet(tmp_path / "sheet.png", [("conditions", controls), *avatars, ("animation", frames)])
    sheet = np.asarray(Image.open(path).convert("RGB")).astype(int)

    assert len(controls) == 6  # pose, depth and normal of two views
    assert len(avatars) == 2 and all(len(tiles) == len(AVATAR_YAWS) for _, tiles in avatars)
    pose = tile_at(sheet, 0, 0)
    assert pose.std() > 5  # the drawn skeleton, not an empty tile
    seed0, seed1 = tile_at(sheet, 1, 0), tile_at(sheet, 2, 0)
    assert np.abs(seed0 - seed1).mean() > 1  # another seed, another avatar
    assert np.abs(tile_at(sheet, 1, 0) - tile_at(sheet, 1, 2)).mean() > 0.5  # another yaw, another view
    assert tile_at(sheet, 3, 2).mean() == 120 and sheet[GAP:GAP + TILE, :LABEL_WIDTH].max() > 150  # frames; labelled rows
