"""Renders of characters (condition bundles with the character as the ``target`` pass) as a 3D GAN dataset.

Multi-view painting needs real Stable Diffusion weights; without them, an artist can train the 3D GAN on
Cycles renders of their own characters instead: render each character's conditions over orbit cameras
with the character as the target (``render-conditions --target-object``, the panel's Target), then
``avatar-foundry gan-dataset BUNDLE... --out DATASET``. The targets are matted on black with the rendered
head mask, as the multi-view stage mats painted images, so the GAN learns a head and not a backdrop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backend.errors import InvalidInput
from blender_addon.formats.errors import FormatError


def matted_bundle(root: Path):
    """A rendered bundle's targets matted on black (``backend.multiview.matting``) as [N, 3, R, R] in
    [-1, 1], the head masks [N, R, R] and the camera labels [N, 25]."""
    import torch
    from PIL import Image

    from backend.multiview.matting import matte_image
    from blender_addon.formats.condition_bundle import read_bundle

    bundle = read_bundle(root)
    labels = {view.id: view.label for view in bundle.views}
    images, masks, cameras = [], [], []
    for render in bundle.renders:
        target = np.asarray(Image.open(root / render.passes["target"]).convert("RGB"), dtype=np.float32) / 255.0
        mask = np.asarray(Image.open(root / render.passes["mask"]).convert("L"), dtype=np.float32) / 255.0
        images.append(matte_image(target, mask, "black").astype(np.float32))
        masks.append(mask)
        cameras.append(labels[render.view])
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) * 2 - 1
    return pixels, np.stack(masks), torch.tensor(cameras, dtype=torch.float32)


def write_gan_dataset(folder: Path, images, cameras) -> Path:
    """An EG3D dataset (``backend.formats.multiview_dataset``'s dataset.json) of images [N, 3, R, R] in
    [-1, 1] on black with their camera labels [N, 25]."""
    from PIL import Image

    from backend.formats.multiview_dataset import MultiviewDataset, MultiviewItem, write_dataset_manifest
    from blender_addon.formats.cameras import view_class, yaw_pitch_from_label

    (folder / "images").mkdir(parents=True, exist_ok=True)
    items = []
    for index, (image, label) in enumerate(zip(images, cameras.tolist())):
        name = f"images/{index:04d}.png"
        Image.fromarray(((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)).save(folder / name)
        yaw, pitch = yaw_pitch_from_label(label)
        items.append(MultiviewItem(file=name, label=label, yaw=yaw, pitch=pitch, view_class=view_class(yaw)))
    write_dataset_manifest(folder, MultiviewDataset(resolution=images.shape[-1], items=items, background="black"))
    return folder


def dataset_from_renders(bundles: Sequence[Path], out: Path, resolution: int) -> Path:
    """Every render of every bundle, matted on black and reduced to ``resolution``², as one EG3D dataset in ``out``."""
    import torch

    from blender_addon.formats.condition_bundle import read_bundle

    images, cameras = [], []
    for root in bundles:
        try:
            bundle = read_bundle(root)
        except FormatError as error:
            raise InvalidInput.from_format_error(error) from None
        without = [render.view for render in bundle.renders if "target" not in render.passes or "mask" not in render.passes]
        if without:
            raise InvalidInput(f"{root} has renders without the character (no target pass), e.g. {without[0]}",
                               "render the conditions with the character as the target (render-conditions --target-object NAME, "
                               "or the panel's Target)", field="bundles")
        if min(bundle.width, bundle.height) < resolution or bundle.width != bundle.height:
            raise InvalidInput(f"{root} holds {bundle.width}x{bundle.height} renders; the dataset needs square renders of at "
                               f"least {resolution} px", f"render square views of {resolution} px or more, or lower --resolution",
                               field="resolution")
        pixels, _, labels = matted_bundle(root)
        images.append(torch.nn.functional.interpolate(pixels, size=resolution, mode="area"))
        cameras.append(labels)
    if not images:
        raise InvalidInput("no condition bundles given", "pass the folders render-conditions wrote", field="bundles")
    return write_gan_dataset(out, torch.cat(images), torch.cat(cameras))
