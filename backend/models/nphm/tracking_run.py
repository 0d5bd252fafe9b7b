"""``fit nphm`` as one resumable run: read the targets, fit, write ``fit.json`` after every frame.

Output folder::

    fit.json            model, targets, settings, the identity code, per frame: expression code, similarity
                        (scale, rotation, translation: target -> model space) and the fit error
    codes.safetensors   identity (1, L), expression (T, E): the same codes as tensors

Rerunning the same command continues after the last fitted frame with the saved identity (a cancelled or
interrupted fit loses at most the frame in progress).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from blender_addon.formats.files import atomic_write, atomic_write_json

from ...progress import Progress
from .fit_targets import read_targets
from .fitting import FitResult, FitSettings, FrameFit, NphmFitter, prior_identity
from .model import NeuralHead, load_head

FIT_NAME = "fit.json"
CODES_NAME = "codes.safetensors"
FIT_VERSION = 1


def _previous(out_dir: Path, identity: dict) -> tuple[torch.Tensor | None, list[FrameFit]]:
    path = out_dir / FIT_NAME
    if not path.is_file():
        return None, []
    document = json.loads(path.read_text(encoding="utf-8"))
    if {key: document.get(key) for key in identity} != identity or not document.get("frames"):
        return None, []
    frames = [FrameFit(f["name"], f["expression"], {k: f[k] for k in ("scale", "rotation", "translation")}, f["error"], f["error_mm"],
                       f["error_fraction"], f["seconds"]) for f in document["frames"]]
    return torch.tensor(document["identity"], dtype=torch.float32), frames


def write_fit(out_dir: Path, identity: dict, result: FitResult) -> None:
    from safetensors.torch import save_file

    frames = [frame.to_json() for frame in result.frames]
    atomic_write_json(out_dir / FIT_NAME, {**identity, "identity": result.identity.view(-1).tolist(), "frames": frames,
                                           "mean_error_mm": sum(f.error_mm for f in result.frames) / max(len(frames), 1)})
    codes = {"identity": result.identity.view(1, -1).cpu().contiguous(),
             "expression": torch.tensor([f.expression for f in result.frames], dtype=torch.float32)}
    atomic_write(out_dir / CODES_NAME, lambda temp: save_file(codes, str(temp)))


def fit_nphm(model_dir: str | Path, targets_dir: str | Path, out_dir: str | Path, settings: FitSettings,
             progress: Progress, head: NeuralHead | None = None, points_per_frame: int = 20000, device: str | torch.device = "cpu") -> FitResult:
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    head = (head or load_head(model_dir)).to(device)
    frames = read_targets(targets_dir, points_per_frame, settings.seed)
    identity = {"version": FIT_VERSION, "model": str(model_dir.resolve()), "targets": str(Path(targets_dir).resolve()),
                "settings": asdict(settings), "frame_names": [frame.name for frame in frames]}
    saved_identity, done = _previous(out_dir, identity)
    fitter = NphmFitter(head, settings, saved_identity if saved_identity is not None else prior_identity(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    return fitter.fit(frames, progress, done, on_frame=lambda result: write_fit(out_dir, identity, result))
