"""Style LoRA files: which ones can be applied, and applying one so that a LoRA that changes nothing is never
taken for one that works.

Accepted: plain LoRAs in diffusers/PEFT names (``unet.*.lora_A.weight``), kohya names
(``lora_unet_*.lora_down.weight``) and the 2023 diffusers attention-processor format
(``*.processor.to_q_lora.down.weight``, what ``train_text_to_image_lora.py`` wrote then), which
today's diffusers loads as nothing at all and is therefore renamed here first.

Refused at registration, naming what the file is: LyCORIS variants, SDXL LoRAs, DoRA files (diffusers
drops their magnitude scales and would paint something else), Stability Control-LoRAs and any file
that is no LoRA (an embedding, a VAE). At job time the LoRA layers that found their layer in the
base model are counted: none is refused, some is a warning with the counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from .store import UNSUPPORTED_HINT, tensor_shapes

ADAPTER_NAME = "style"
_LYCORIS_MARKERS = {"hada_w1": "LoHa", "lokr_w1": "LoKr", "oft_blocks": "OFT", "oft_diag": "OFT", "a1.weight": "GLoRA"}
_SDXL_LORA_MARKERS = ("lora_te2_", "text_encoder_2.", "te2.")
_DOWN_SUFFIXES = ("lora_down.weight", "lora_A.weight", "lora.down.weight", "_lora.down.weight", "lora_linear_layer.down.weight")
_ATTENTION_PROCESSOR_KEY = re.compile(r"^(?:unet\.)?(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")


def check_lora_format(path: Path) -> None:
    """A plain LoRA for SD 1.x/2.x, else an error naming what the file is."""
    from .file_kinds import check_kind_fits_role, weights_kind

    shapes = tensor_shapes(path)
    check_kind_fits_role(path, "lora", weights_kind(shapes))
    for marker, lycoris in _LYCORIS_MARKERS.items():
        if any(marker in name for name in shapes):
            raise InvalidInput(f"{path.name} is a LyCORIS {lycoris} file, which is not supported",
                               "use a plain LoRA (lora_up/lora_down or lora_A/lora_B weights), or convert it to one", field="path")
    if any(marker in name for name in shapes for marker in _SDXL_LORA_MARKERS):
        raise InvalidInput(f"{path.name} is an SDXL LoRA (it has weights for a second text encoder)", UNSUPPORTED_HINT, field="path")
    dora = sum(name.endswith("dora_scale") for name in shapes)
    if dora:
        raise InvalidInput(f"{path.name} is a DoRA file ({dora} layers with dora_scale weights): diffusers would drop its magnitude "
                           "scales and paint something else than it was trained for",
                           "use a plain LoRA version of it (DoRA releases often publish one), or a LoRA trained without DoRA", field="path")


def lora_layer_count(names) -> int:
    """How many layers a LoRA file adapts: one down (A) projection per layer, whatever the naming."""
    return sum(name.endswith(_DOWN_SUFFIXES) for name in names)


def diffusers_state_dict(path: Path) -> dict[str, Any]:
    """The LoRA's tensors under names today's diffusers loads (the 2023 attention-processor names renamed)."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if not any(_ATTENTION_PROCESSOR_KEY.match(name) for name in tensors):
        return tensors
    renamed = {}
    for name, tensor in tensors.items():
        match = _ATTENTION_PROCESSOR_KEY.match(name)
        if match is None:
            renamed[name] = tensor
            continue
        module, projection, direction = match.groups()
        projection = "to_out.0" if projection == "to_out" else projection
        renamed[f"unet.{module}.{projection}.lora_{'A' if direction == 'down' else 'B'}.weight"] = tensor
    return renamed


@dataclass(frozen=True)
class LoraFit:
    """How much of a LoRA found its layers in the base model."""

    file_layers: int
    matched_layers: int

    @property
    def partial(self) -> bool:
        return 0 < self.matched_layers < self.file_layers

    def describe(self, name: str) -> str:
        return f"LoRA {name}: {self.matched_layers} of its {self.file_layers} layers match the base model"


def matched_layer_count(*models: Any) -> int:
    """Layers of ``models`` that received the style adapter."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return sum(1 for model in models for module in model.modules()
               if isinstance(module, BaseTunerLayer) and ADAPTER_NAME in getattr(module, "lora_A", {}))


def apply_style_lora(pipeline: Any, path: Path, scale: float) -> LoraFit:
    """Fuse the LoRA at ``path`` into ``pipeline``; refuses one that fits no layer or is made for another base size."""
    state = diffusers_state_dict(path)
    fit_layers = lora_layer_count(state)
    try:
        pipeline.load_lora_weights(state, adapter_name=ADAPTER_NAME)
    except (RuntimeError, ValueError) as error:
        if _PEFT_NO_TARGET in str(error):  # PEFT's words when none of the named layers exists
            raise _changes_nothing(path, fit_layers) from None
        detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise InvalidInput(f"LoRA {path.name} does not fit the base model ({detail})",
                           "use a LoRA trained for this base model's family (SD 1.5 LoRAs with SD 1.5, SD 2.1 with SD 2.1)",
                           field="lora") from None
    fit = LoraFit(fit_layers, matched_layer_count(pipeline.unet, pipeline.text_encoder))
    if fit.matched_layers == 0:
        pipeline.unload_lora_weights()
        raise _changes_nothing(path, fit_layers)
    pipeline.fuse_lora(lora_scale=scale)
    pipeline.unload_lora_weights()
    return fit


_PEFT_NO_TARGET = "not found in the base model"


def _changes_nothing(path: Path, file_layers: int) -> InvalidInput:
    return InvalidInput(f"LoRA {path.name} changes nothing: none of its {file_layers} layers matches a layer of the base model",
                        "use a LoRA for SD 1.x/2.x in diffusers, PEFT or kohya names (convert other formats first)", field="lora")
