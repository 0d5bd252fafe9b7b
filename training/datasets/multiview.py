"""The multi-view dataset (``backend/formats/multiview_dataset.py``) as tensors for GAN training.

With ``mirror`` on, the dataset is doubled: item ``i + N`` is item ``i`` flipped horizontally with
its camera label mirrored (``cameras.mirror_label``) and its yaw negated, so images and poses agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from backend.formats.multiview_dataset import read_dataset
from blender_addon.formats.cameras import mirror_label
from blender_addon.formats.errors import FormatError


class MultiviewImages(Dataset):
    def __init__(self, root: str | Path, resolution: int, mirror: bool = True) -> None:
        self.root = Path(root)
        self.manifest = read_dataset(self.root)
        if not self.manifest.items:
            raise FormatError("items", f"the dataset in {self.root} has no images", "run the multiview stage first")
        self.resolution = resolution
        self.mirror = mirror
        items = self.manifest.items
        labels = [item.label for item in items]
        yaws = [item.yaw for item in items]
        if mirror:
            labels += [mirror_label(item.label) for item in items]
            yaws += [-item.yaw for item in items]
        copies = 2 if mirror else 1
        self.labels = torch.tensor(labels, dtype=torch.float32)
        self.yaw = torch.tensor(yaws, dtype=torch.float32)
        self.pitch = torch.tensor([item.pitch for item in items] * copies, dtype=torch.float32)
        self.pose_confidence = torch.tensor([item.pose_confidence for item in items] * copies, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def load_image(self, index: int) -> torch.Tensor:
        """[3, R, R] in [-1, 1] (alpha, if any, is dropped)."""
        from PIL import Image

        count = len(self.manifest.items)
        item = self.manifest.items[index % count]
        try:
            with Image.open(self.root / item.file) as opened:
                image = opened.convert("RGB")
        except OSError as error:
            raise FormatError(f"items[{index % count}].file", f"cannot read {item.file}: {error}") from None
        if image.size != (self.resolution, self.resolution):
            image = image.resize((self.resolution, self.resolution), Image.LANCZOS)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        if index >= count:
            array = array[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.load_image(index), **self.pose(torch.tensor([index]), squeeze=True)}

    def pose(self, indices: torch.Tensor, squeeze: bool = False) -> dict[str, torch.Tensor]:
        """Camera label, yaw, pitch and pose confidence of these items."""
        values = {"label": self.labels[indices], "yaw": self.yaw[indices], "pitch": self.pitch[indices],
                  "pose_confidence": self.pose_confidence[indices]}
        return {key: value[0] for key, value in values.items()} if squeeze else values

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": torch.stack([self.load_image(int(i)) for i in indices]), **self.pose(indices)}
