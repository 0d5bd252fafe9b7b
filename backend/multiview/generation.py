"""Paint a multi-view dataset: for every render of a condition bundle, ``per_view`` stylized images
by Stable Diffusion + ControlNet(s), each the best of ``candidates`` by pose confidence.

The algorithm, top to bottom (:func:`generate_multiview`):

1. Check everything first (settings, bundle passes, models): bad input writes nothing.
2. Plan every image: its render, prompt (style + view phrase + sampled attributes), seed, file.
3. Skip images already on disk (resume); shard the rest across ranks (``torchrun`` or machines).
4. Paint in batches: text embeddings computed once per distinct prompt, one seeded generator per
   candidate, multi-ControlNet with per-control weights; fp16/bf16 + SDPA on GPUs, optional
   ``torch.compile``.
5. Save each image atomically as PNG carrying its dataset item (prompt, seed, label, confidence)
   in a text chunk, so ``dataset.json`` can always be rebuilt from the images themselves
   (:func:`write_manifest`, also the merge step of sharded runs).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from blender_addon.formats.condition_bundle import ConditionBundle, Render, read_bundle
from blender_addon.formats.errors import FormatError
from blender_addon.formats.files import atomic_write, atomic_write_json
from blender_addon.formats.notices import write_notices

from ..errors import InvalidInput
from ..formats.multiview_dataset import DATASET_BACKGROUNDS, MultiviewDataset, MultiviewItem, write_dataset_manifest
from ..memory_plan import MEMORY_MODES, batch_size_after_out_of_memory
from ..model_cache import ModelCache
from ..progress import Progress, SilentProgress
from ..models.store import CONTROLNET_ROLES, ModelEntry, ModelStore
from .attributes import DEFAULT_ATTRIBUTE_CATALOG, DEFAULT_ATTRIBUTES_PER_IMAGE, sample_attributes, validate_catalog
from .condition_images import check_bundle_for_controls, load_render_conditions
from .matting import matte_image
from .pose_confidence import pose_confidence
from .prompts import DEFAULT_BACK_VIEW_NEGATIVE, DEFAULT_NEGATIVE_PROMPT, PromptSettings, build_prompts

GENERATION_RECORD = "generation.json"
PNG_ITEM_KEY = "avatar_foundry_item"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_SETTINGS_THAT_ALLOW_CHANGE = ("per_view", "batch_size", "compile")

ResolveEntry = Callable[[str, str], ModelEntry]
"""(model name, role) -> validated store entry."""


@dataclass
class MultiviewSettings:
    """Everything that decides the images; CLI flags and job params map onto it one to one."""

    style: str
    base: str
    controlnets: dict[str, str]
    """Control kind ('pose', 'depth', 'normal') -> model-store name of its ControlNet."""
    control_weights: dict[str, float] = field(default_factory=dict)
    per_view: int = 1
    candidates: int = 1
    seed: int = 0
    steps: int = 20
    guidance: float = 7.5
    resolution: int = 0
    """Output size in pixels; 0 means the base model's native size (512 for SD 1.5)."""
    batch_size: int = 8
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    attributes_per_image: int = DEFAULT_ATTRIBUTES_PER_IMAGE
    attributes: dict[str, list[str]] | None = None
    front_phrase: str = "front view"
    side_phrase: str = "side view"
    back_phrase: str = "back view"
    back_view_negative: str = DEFAULT_BACK_VIEW_NEGATIVE
    front_max_degrees: float | None = None
    back_min_degrees: float | None = None
    lora: str | None = None
    lora_scale: float = 1.0
    vae: str | None = None
    """Model-store name of a VAE to decode with instead of the base model's own (required when it has none)."""
    embeddings: list[str] = field(default_factory=list)
    """Textual-inversion embeddings the prompts use by name (see :func:`embeddings_in_prompts`)."""
    scheduler: str | None = None
    precision: str = "auto"
    compile: bool = False
    memory: str = "auto"
    """'auto' (small-VRAM measures chosen from free GPU memory), 'full' (none) or 'low' (all)."""
    background: str = "black"
    """What the painted background becomes: 'black' or 'white' (the 3D GAN's flat colour) or 'keep'."""

    def check(self) -> None:
        positive = {"per_view": self.per_view, "candidates": self.candidates, "steps": self.steps, "batch_size": self.batch_size}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise FormatError(name, f"must be a whole number >= 1, got {value!r}")
        if not self.controlnets:
            raise FormatError("controlnets", "no ControlNet given", "use pose and/or depth (both is the default)")
        if self.background not in DATASET_BACKGROUNDS:
            raise FormatError("background", f"unknown background {self.background!r}", f"use one of: {', '.join(DATASET_BACKGROUNDS)}")
        unknown = sorted(set(self.control_weights) - set(self.controlnets))
        if unknown:
            raise FormatError(f"control_weights.{unknown[0]}", "is a weight for a control that is not used")
        if self.resolution and (self.resolution < 8 or self.resolution % 8):
            raise FormatError("resolution", f"must be a multiple of 8, got {self.resolution}")
        if self.precision not in PRECISIONS:
            raise FormatError("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.memory not in MEMORY_MODES:
            raise FormatError("memory", f"must be one of {', '.join(MEMORY_MODES)}")
        if self.guidance < 0:
            raise FormatError("guidance", "must be >= 0")
        self.prompt_settings()
        self.catalog()

    def prompt_settings(self) -> PromptSettings:
        return PromptSettings(self.style, self.negative_prompt, self.front_phrase, self.side_phrase, self.back_phrase,
                              self.back_view_negative, self.front_max_degrees, self.back_min_degrees)

    def catalog(self) -> dict[str, tuple[str, ...]]:
        return validate_catalog(self.attributes) if self.attributes is not None else DEFAULT_ATTRIBUTE_CATALOG

    def weight(self, kind: str) -> float:
        return float(self.control_weights.get(kind, 1.0))

    def prompt_texts(self) -> list[str]:
        """Every text that goes into a prompt or negative prompt."""
        texts = [self.style, self.negative_prompt, self.back_view_negative, self.front_phrase, self.side_phrase, self.back_phrase]
        return texts + [option for options in self.catalog().values() for option in options]


def embeddings_in_prompts(store: ModelStore, settings: MultiviewSettings) -> list[str]:
    """The registered embeddings whose trigger word (their name) the prompts use, as A1111 and ComfyUI do."""
    from ..models.textual_inversion import triggers_in

    return triggers_in(settings.prompt_texts(), [entry.name for entry in store.list() if entry.role == "embedding"])


def choose_models(store: ModelStore, base: str, controlnets: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Fill in empty names: the one base model, and the one ControlNet of each control's role."""
    unknown = sorted(set(controlnets) - set(CONTROLNET_ROLES))
    if unknown:
        raise FormatError(f"controlnets.{unknown[0]}", "is not a control kind", f"use {', '.join(CONTROLNET_ROLES)}")
    base = store.pick(base, "base", "base")
    return base, {kind: store.pick(name, CONTROLNET_ROLES[kind], f"controlnets.{kind}") for kind, name in controlnets.items()}


@dataclass(frozen=True)
class Shard:
    """This process paints images whose plan position % count == index."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise FormatError("shard", f"index {self.index} is not in [0, {self.count})", "use --shard I/N with 0 <= I < N")


@dataclass
class PlannedImage:
    render: Render
    view_class: str
    index: int
    file: str
    seed: int
    prompt: str
    negative_prompt: str


def plan_images(bundle: ConditionBundle, settings: MultiviewSettings) -> list[PlannedImage]:
    """Every image of the dataset, in a fixed order; seeds and attributes depend only on the
    settings' seed, the render and the image index, so shards and resumed runs agree."""
    prompt_settings, catalog = settings.prompt_settings(), settings.catalog()
    planned = []
    for render in bundle.renders:
        view_class_name = prompt_settings.view_class_of(bundle.view(render.view))
        for index in range(settings.per_view):
            seed = image_seed(settings.seed, render, index)
            attributes = sample_attributes(catalog, seed, settings.attributes_per_image)
            prompt, negative = build_prompts(prompt_settings, view_class_name, attributes)
            file = f"images/{render.view}_f{render.frame:05d}_{index:03d}.png"
            planned.append(PlannedImage(render, view_class_name, index, file, seed, prompt, negative))
    return planned


def image_seed(base_seed: int, render: Render, index: int) -> int:
    return zlib.crc32(f"{base_seed}/{render.view}/{render.frame}/{index}".encode()) & 0x7FFFFFFF


def candidate_seed(seed: int, candidate: int) -> int:
    return seed if candidate == 0 else zlib.crc32(f"{seed}/candidate/{candidate}".encode()) & 0x7FFFFFFF


def generate_multiview(
    bundle_dir: str | Path,
    out_dir: str | Path,
    settings: MultiviewSettings,
    resolve_entry: ResolveEntry,
    progress: Progress | None = None,
    device: Any = None,
    shard: Shard = Shard(),
    models: ModelCache | None = None,
) -> MultiviewDataset | None:
    """Paint the dataset into ``out_dir``; returns it (None for a shard other than the only one,
    whose images are merged later by :func:`write_manifest`)."""
    progress = progress or SilentProgress()
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    settings.check()
    bundle = read_bundle(bundle_dir)
    kinds = list(settings.controlnets)
    check_bundle_for_controls(bundle, kinds)
    entries = _resolve_models(settings, resolve_entry)
    record = _generation_record(settings, bundle_dir)
    check_same_run(out_dir, record)
    plan = [image for position, image in enumerate(plan_images(bundle, settings)) if position % shard.count == shard.index]
    todo = [image for image in plan if not (out_dir / image.file).exists()]
    if todo:
        progress.update(0.0, "loading models")
        painter = _get_painter(entries, settings, device, models)
        for warning in painter.warnings:
            progress.update(0.0, f"warning: {warning}")
        _write_artist_notices(out_dir, painter.warnings, painter.cut_prompts([image.prompt for image in plan]),
                              len({image.prompt for image in plan}))
        resolution = settings.resolution or painter.native_resolution
        record["resolution"] = resolution
        record["warnings"] = painter.warnings
        atomic_write_json(out_dir / GENERATION_RECORD, record)
        _paint(painter, todo, bundle, bundle_dir, out_dir, settings, resolution, progress, len(plan) - len(todo), len(plan))
    progress.update(1.0, "done")
    return write_manifest(out_dir) if shard.count == 1 else None


def _write_artist_notices(out_dir: Path, warnings: list[str], cut: list[tuple[str, str]], distinct: int) -> None:
    """Tell the artist (``notices.json``, shown under the job in the add-on) what the models warned of (a
    LoRA that fits only in part) and that CLIP reads only the start of long prompts: the style plus
    several attributes passes its 77 tokens easily."""
    notices = list(warnings)
    if cut:
        notices.append(f"{len(cut)} of {distinct} prompts are longer than the text encoder reads (77 tokens): "
                       f"words from '{cut[0][1][:60]}' on were ignored. Shorten the style or use fewer attributes per image.")
    if notices:
        write_notices(out_dir, notices)


def _resolve_models(settings: MultiviewSettings, resolve_entry: ResolveEntry) -> dict[str, ModelEntry]:
    """The store entries of the run, checked to fit together before anything is loaded or written."""
    from ..models.diffusion_loading import require_vae_if_missing
    from ..models.textual_inversion import check_embeddings_fit
    from .painter import EMBEDDING_KEY_PREFIX

    entries = {"base": resolve_entry(settings.base, "base")}
    for kind, name in settings.controlnets.items():
        entries[kind] = resolve_entry(name, CONTROLNET_ROLES[kind])
    if settings.lora:
        entries["lora"] = resolve_entry(settings.lora, "lora")
    if settings.vae:
        entries["vae"] = resolve_entry(settings.vae, "vae")
    for name in settings.embeddings:
        entries[EMBEDDING_KEY_PREFIX + name] = resolve_entry(name, "embedding")
    require_vae_if_missing(entries["base"], entries.get("vae"))
    check_embeddings_fit(entries["base"], [entries[EMBEDDING_KEY_PREFIX + name] for name in settings.embeddings])
    return entries


def _generation_record(settings: MultiviewSettings, bundle_dir: Path) -> dict[str, Any]:
    manifest = (bundle_dir / "conditions.json").read_bytes()
    return {"settings": asdict(settings), "source_bundle": str(bundle_dir.resolve()),
            "bundle_sha256": hashlib.sha256(manifest).hexdigest()}


def check_same_run(out_dir: Path, record: dict[str, Any]) -> None:
    """Resuming (or merging shards into) ``out_dir`` continues the same dataset: refuse another bundle
    or settings that would change the images."""
    previous_path = out_dir / GENERATION_RECORD
    if not previous_path.is_file():
        if out_dir.exists() and any(not path.name.startswith(".") for path in out_dir.iterdir()):  # ".": other ranks' temp files
            raise FormatError("out", f"{out_dir} is not empty and holds no {GENERATION_RECORD}", "choose a new or empty output folder")
        return
    previous = json.loads(previous_path.read_text(encoding="utf-8"))
    if previous.get("bundle_sha256") != record["bundle_sha256"]:
        raise FormatError("conditions", f"{out_dir} was painted from another condition bundle", "use a new output folder for this bundle")
    # A setting newer than the run had its default then (runs from before matting kept their backgrounds).
    defaults = {**asdict(MultiviewSettings(style="", base="", controlnets={})), "background": "keep"}
    for key, value in record["settings"].items():
        old = previous["settings"].get(key, defaults.get(key))
        if key not in _SETTINGS_THAT_ALLOW_CHANGE and old != value:
            raise FormatError(key, f"differs from the run that started {out_dir} ({old!r} there, {value!r} now)",
                              "resume with the same settings, or paint into a new output folder")


def write_manifest(out_dir: str | Path) -> MultiviewDataset:
    """(Re)build ``dataset.json`` from the images on disk: the merge step after sharded runs."""
    out_dir = Path(out_dir)
    record_path = out_dir / GENERATION_RECORD
    if not record_path.is_file():
        raise FormatError(GENERATION_RECORD, f"not found in {out_dir}", "point at a folder written by 'avatar-foundry multiview'")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    items = [read_image_item(path) for path in sorted((out_dir / "images").glob("*.png"))]
    dataset = MultiviewDataset(int(record["resolution"]), items, record["settings"]["style"], record["source_bundle"],
                               background=record["settings"].get("background", "keep"))
    write_dataset_manifest(out_dir, dataset)
    return dataset


def read_image_item(path: Path) -> MultiviewItem:
    with Image.open(path) as image:
        text = getattr(image, "text", {}).get(PNG_ITEM_KEY)
    if text is None:
        raise FormatError(f"images/{path.name}", "carries no dataset item", "remove images that were not painted by 'avatar-foundry multiview'")
    return MultiviewItem(**json.loads(text))


# -- painting ---------------------------------------------------------------------------------


@dataclass
class _Work:
    image: PlannedImage
    candidate: int


def _paint(painter, todo: list[PlannedImage], bundle: ConditionBundle, bundle_dir: Path, out_dir: Path, settings: MultiviewSettings,
           resolution: int, progress: Progress, done_before: int, total: int) -> None:
    kinds = list(settings.controlnets)
    units = [_Work(image, candidate) for image in todo for candidate in range(settings.candidates)]
    conditions: dict[tuple[str, int], Any] = {}
    finished: dict[str, list[tuple[float, int, np.ndarray]]] = {}
    start, batch_size = 0, settings.batch_size
    while start < len(units):
        batch = units[start:start + batch_size]
        for work in batch:
            key = (work.image.render.view, work.image.render.frame)
            if key not in conditions:
                conditions[key] = load_render_conditions(bundle_dir, work.image.render, kinds, resolution)
        fraction_before = (done_before + start / settings.candidates) / total
        fraction_after = (done_before + (start + len(batch)) / settings.candidates) / total
        stage = f"painting images {done_before + start // settings.candidates + 1}-" \
                f"{done_before + (start + len(batch) - 1) // settings.candidates + 1} of {total}"
        try:
            pixels = painter.paint(
                [work.image for work in batch], [candidate_seed(work.image.seed, work.candidate) for work in batch],
                [[conditions[(w.image.render.view, w.image.render.frame)].controls[kind] for w in batch] for kind in kinds],
                settings, resolution,
                lambda step_fraction: progress.update(fraction_before + (fraction_after - fraction_before) * step_fraction, stage),
            )
        except _out_of_memory_errors():
            batch_size = _smaller_batch_after_out_of_memory(batch_size, resolution)
            continue
        start += len(batch)
        for work, image_pixels in zip(batch, pixels):
            condition = conditions[(work.image.render.view, work.image.render.frame)]
            score = pose_confidence(image_pixels, condition.mask, condition.depth)
            finished.setdefault(work.image.file, []).append((score, work.candidate, image_pixels))
            if len(finished[work.image.file]) == settings.candidates:
                _save_best(out_dir, work.image, bundle, finished.pop(work.image.file), settings, condition.mask)
        last = (batch[-1].image.render.view, batch[-1].image.render.frame)
        conditions = {last: conditions[last]}  # work is render-major: earlier renders are finished
        progress.update(fraction_after, stage)


def _out_of_memory_errors() -> tuple[type[BaseException], ...]:
    import torch

    return (torch.OutOfMemoryError,)


def _smaller_batch_after_out_of_memory(batch_size: int, resolution: int) -> int:
    """The batch size to retry with after the device ran out of memory (its cache emptied first)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    smaller = batch_size_after_out_of_memory(batch_size)
    if smaller is None:
        raise InvalidInput(f"the GPU ran out of memory painting a single {resolution} px image",
                           "use memory 'low' (CPU offload), a lower resolution, or free the GPU (Free Memory)", field="memory")
    return smaller


def _save_best(out_dir: Path, image: PlannedImage, bundle: ConditionBundle, candidates, settings: MultiviewSettings,
               mask: np.ndarray) -> None:
    """Keep the candidate that agrees best with its pose, matted onto the GAN's background."""
    score, candidate, pixels = max(candidates, key=lambda entry: (entry[0], -entry[1]))
    pixels = matte_image(pixels, mask, settings.background)
    view = bundle.view(image.render.view)
    item = MultiviewItem(
        file=image.file, label=list(view.label), yaw=view.yaw, pitch=view.pitch, view_class=image.view_class,
        pose_confidence=round(min(max(score, 0.0), 1.0), 4), prompt=image.prompt, negative_prompt=image.negative_prompt,
        seed=candidate_seed(image.seed, candidate), view_id=view.id, candidate=candidate,
    )
    metadata = PngInfo()
    metadata.add_text(PNG_ITEM_KEY, json.dumps(asdict(item)))
    picture = Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8))
    atomic_write(out_dir / image.file, lambda temp: picture.save(temp, format="PNG", pnginfo=metadata))


def _get_painter(entries: dict[str, ModelEntry], settings: MultiviewSettings, device: Any, models: ModelCache | None):
    from .painter import Painter, painter_cache_key

    load = partial(Painter.load, entries, settings, device)
    return models.get(painter_cache_key(entries, settings, device), load) if models is not None else load()
