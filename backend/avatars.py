"""Avatars out of a trained generator: a style code -> preview renders + textured ``avatar.glb`` +
``avatar.json`` (seed, w, settings, checkpoint).

The style code comes from :func:`style_code` alone, so that other sources of w (a style prior
conditioned on a reference image) plug in there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from blender_addon.formats.cameras import orbit_label
from blender_addon.formats.files import atomic_write, atomic_write_json

from .errors import InvalidInput
from .formats.configs import config_to_dict
from .geometry.glb_export import write_glb
from .geometry.mesh_extraction import MeshSettings, mesh_from_field
from .geometry.texture_baking import TextureSettings, bake_texture, unwrap
from .progress import Progress, ScaledProgress, SilentProgress

AVATAR_JSON_VERSION = 1
DEFAULT_PREVIEW_YAWS = (0.0, 45.0, 90.0, 180.0, -90.0, -45.0)


@dataclass
class StyleRequest:
    """Where the style code comes from: a seed through the mapping network, or a saved w."""

    seed: int = 0
    truncation_psi: float = 0.7
    w_file: str | None = None
    w: list | None = None
    """w values ([w_dim] or [num_ws][w_dim]) given directly, e.g. in a job's params."""


@dataclass
class AvatarSettings:
    style: StyleRequest = field(default_factory=StyleRequest)
    preview_yaws: tuple[float, ...] = DEFAULT_PREVIEW_YAWS
    preview_pitch: float = 0.0
    mesh: MeshSettings = field(default_factory=MeshSettings)
    texture: TextureSettings = field(default_factory=TextureSettings)
    export_mesh: bool = True


class GeneratorField:
    """The radiance field of one style code, as mesh export asks for it (numpy in, numpy out)."""

    def __init__(self, generator, ws) -> None:
        import torch

        self._generator = generator
        self._device = ws.device
        with torch.no_grad():
            self._planes = generator.planes(ws[:1])

    def _query(self, points: np.ndarray):
        import torch

        with torch.no_grad():
            tensor = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).to(self._device)
            return self._generator.query(self._planes, tensor.unsqueeze(0))

    def density(self, points: np.ndarray) -> np.ndarray:
        """Raw sigma (before the renderer's softplus), the quantity EG3D thresholds for meshes."""
        return self._query(points)["sigma"][0, :, 0].float().cpu().numpy()

    def color(self, points: np.ndarray) -> np.ndarray:
        return self._query(points)["features"][0, :, :3].float().cpu().numpy()


def ws_from_array(values: np.ndarray, num_ws: int, w_dim: int, source: str):
    """[w_dim] or [num_ws, w_dim] values -> ws [1, num_ws, w_dim]; other shapes are refused."""
    import torch

    values = np.asarray(values, dtype=np.float32)
    if values.shape == (w_dim,):
        values = np.repeat(values[None], num_ws, axis=0)
    if values.shape != (num_ws, w_dim):
        raise InvalidInput(f"w from {source} has shape {values.shape}; this generator needs ({num_ws}, {w_dim}) or ({w_dim},)",
                           "use a w saved from the same checkpoint", field="w")
    if not np.isfinite(values).all():
        raise InvalidInput(f"w from {source} holds NaN or infinite numbers", "use a w saved from the same checkpoint", field="w")
    return torch.from_numpy(np.ascontiguousarray(values)).unsqueeze(0)


def read_w_file(path: str | Path, num_ws: int, w_dim: int):
    """A style code from ``.npy`` ([w_dim] or [num_ws, w_dim]) or an ``avatar.json``; returns ws [1, num_ws, w_dim]."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist", "pass an avatar.json or a .npy file holding w", field="w")
    try:
        if path.suffix == ".json":
            values = np.asarray(json.loads(path.read_text(encoding="utf-8"))["w"], dtype=np.float32)
        else:
            values = np.load(path, allow_pickle=False)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
        raise InvalidInput(f"cannot read a style code from {path}: {error}", "pass an avatar.json or a .npy file holding w", field="w") from None
    return ws_from_array(values, num_ws, w_dim, str(path))


def style_code(generator, request: StyleRequest, device):
    """ws [1, num_ws, w_dim] for the request: given w values, a saved w, else the seed's z through the mapping."""
    import torch

    if request.w is not None:
        return ws_from_array(np.asarray(request.w), generator.num_ws, generator.w_dim, "the request").to(device)
    if request.w_file:
        return read_w_file(request.w_file, generator.num_ws, generator.w_dim).to(device)
    z = torch.from_numpy(np.random.RandomState(request.seed).randn(1, generator.z_dim).astype(np.float32)).to(device)
    c = torch.tensor([orbit_label(0.0, 0.0)], dtype=torch.float32, device=device)
    with torch.no_grad():
        return generator.mapping(z, c, truncation_psi=request.truncation_psi)


PREVIEWS_PER_CALL = 8
"""Views rendered in one generator call: in GPU run 1 (an H200) a batch of 8 gave 1.35x (fp32) and 1.88x (bf16 autocast
with channels-last) the images/s of one at a time."""


def render_previews(generator, ws, yaws, pitch: float, out_dir: Path, progress: Progress) -> list[str]:
    """One PNG per yaw (the super-resolved image) in ``out_dir/previews``; returns relative names.
    The views are rendered together, ``PREVIEWS_PER_CALL`` at a time."""
    import torch

    from .models.eg3d.inference import inference_autocast

    names = []
    for start in range(0, len(yaws), PREVIEWS_PER_CALL):
        chunk = list(yaws[start:start + PREVIEWS_PER_CALL])
        c = torch.tensor([orbit_label(yaw, pitch) for yaw in chunk], dtype=torch.float32, device=ws.device)
        with torch.no_grad(), inference_autocast(ws.device):
            images = generator.synthesis(ws[:1].expand(len(chunk), -1, -1), c, jitter=False)["image"]
        for offset, (yaw, image) in enumerate(zip(chunk, images)):
            name = f"previews/yaw_{int(round(yaw)):+04d}.png"
            write_png(out_dir / name, image)
            names.append(name)
            progress.update((start + offset + 1) / len(yaws), f"preview {start + offset + 1}/{len(yaws)}")
    return names


def to_pil_image(image):
    """[3, H, W] tensor in [-1, 1] -> an 8-bit RGB PIL image."""
    from PIL import Image

    array = ((image.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def write_png(path: Path, image) -> None:
    """[3, H, W] in [-1, 1] -> 8-bit PNG, atomically."""
    picture = to_pil_image(image)
    atomic_write(path, lambda temp: picture.save(temp, format="PNG"))


def generate_avatar(generator, settings: AvatarSettings, out_dir: str | Path, checkpoint: str = "",
                    progress: Progress | None = None, image_guidance: dict | None = None) -> dict:
    """Write previews, ``avatar.glb`` (unless ``export_mesh`` is off) and ``avatar.json``; returns the JSON.

    ``image_guidance``: for a w predicted from a reference image, how it was predicted (prior, image,
    seed, guidance), recorded in ``avatar.json`` since the style then has no seed of its own."""
    progress = progress or SilentProgress()
    out_dir = Path(out_dir)
    device = next(generator.parameters()).device
    ws = style_code(generator, settings.style, device)
    previews = render_previews(generator, ws, settings.preview_yaws, settings.preview_pitch, out_dir, ScaledProgress(progress, 0.0, 0.2))
    document = {
        "version": AVATAR_JSON_VERSION,
        "seed": None if (settings.style.w_file or settings.style.w is not None) else settings.style.seed,
        "truncation_psi": settings.style.truncation_psi,
        "w": ws[0].float().cpu().tolist(),
        "checkpoint": checkpoint,
        "config": config_to_dict(generator.config),
        "settings": {**asdict(settings), "style": {**asdict(settings.style), "w": None}},
        "previews": previews,
        "mesh": None,
        "image_guidance": image_guidance,
    }
    if settings.export_mesh:
        mesh_settings = replace(settings, mesh=replace(settings.mesh, box_size=generator.config.box_warp))
        document["mesh"] = export_mesh(GeneratorField(generator, ws), mesh_settings, out_dir / "avatar.glb", ScaledProgress(progress, 0.2, 1.0))
    atomic_write_json(out_dir / "avatar.json", document)
    progress.update(1.0, "avatar written")
    return document


def export_mesh(field, settings: AvatarSettings, path: Path, progress: Progress) -> dict:
    """Density grid -> mesh -> UV atlas -> baked texture -> GLB; returns counts for avatar.json."""
    mesh = mesh_from_field(field, settings.mesh, ScaledProgress(progress, 0.0, 0.5))
    progress.update(0.55, "mesh: unwrapping UVs")
    unwrapped = unwrap(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    texture = bake_texture(field, unwrapped, settings.texture, ScaledProgress(progress, 0.7, 0.95))
    write_glb(path, unwrapped, texture)
    return {"file": path.name, "vertices": int(len(unwrapped.vertices)), "faces": int(len(unwrapped.faces)),
            "texture_size": settings.texture.size, "watertight": bool(mesh.is_watertight),
            "level": float(mesh.metadata["level"]), "level_fallback": bool(mesh.metadata["level_fallback"])}
