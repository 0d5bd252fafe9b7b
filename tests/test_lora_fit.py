"""A style LoRA changes the painting or is refused: the 2023 diffusers attention-processor format is
applied (today's diffusers loads it as nothing), a LoRA whose layers match none of the base model's is
refused and one that matches only some is painted with a warning giving the counts; DoRA files, whose
scales diffusers would drop, are refused at registration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from backend.errors import InvalidInput
from backend.models.store import ModelStore
from backend.multiview.generation import generate_multiview
from backend.progress import SilentProgress
from tests.fixtures.artist_models import write_attention_processor_lora, write_kohya_lora
from tests.test_multiview_generation import settings_for, write_bundle

MISSING_LAYERS = ("down_blocks.7.attentions.0.transformer_blocks.0.attn1.to_q", "up_blocks.9.attentions.2.transformer_blocks.0.attn2.to_v")


@pytest.fixture
def tiny_unet(tiny_models):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(tiny_models.paths.base / "unet")


@pytest.fixture
def store(tiny_models, tmp_path):
    store = ModelStore(tmp_path / "store")
    store.add(tiny_models.paths.base, "sd", "base")
    store.add(tiny_models.paths.controlnets["pose"], "pose", "controlnet-pose")
    return store


def _paint(tiny_models, store, out, lora=None, progress=None):
    settings = settings_for(tiny_models, base="sd", controlnets={"pose": "pose"}, control_weights={}, resolution=16, lora=lora)
    dataset = generate_multiview(write_bundle(out.parent / f"{out.name}-bundle", yaws=(0.0,)), out, settings, store.resolve, progress)
    return np.asarray(Image.open(out / dataset.items[0].file), dtype=np.int16)


def test_a_2023_attention_processor_lora_changes_the_painting(tiny_models, tiny_unet, store, tmp_path):
    store.add(write_attention_processor_lora(tmp_path / "pytorch_lora_weights.safetensors", tiny_unet), "old-style", "lora")
    plain = _paint(tiny_models, store, tmp_path / "plain")
    styled = _paint(tiny_models, store, tmp_path / "styled", lora="old-style")
    assert np.abs(styled - plain).max() > 0


def test_a_lora_that_matches_only_some_layers_paints_with_a_warning_giving_the_counts(tiny_models, tiny_unet, store, tmp_path):
    path = write_kohya_lora(tmp_path / "other-version.safetensors", tiny_unet, extra_layers=MISSING_LAYERS)
    store.add(path, "other-version", "lora")
    progress = SilentProgress()
    _paint(tiny_models, store, tmp_path / "out", lora="other-version", progress=progress)
    matched = sum(1 for name, _ in tiny_unet.named_modules() if name.endswith(("attn1.to_q", "attn2.to_k")))
    expected = f"LoRA other-version.safetensors: {matched} of its {matched + 2} layers match the base model"
    assert any(expected in stage and stage.startswith("warning:") for _, stage in progress.reports)
    assert expected in json.loads((tmp_path / "out" / "generation.json").read_text())["warnings"][0]


def test_a_lora_that_matches_no_layer_is_refused_before_anything_is_written(tiny_models, tiny_unet, store, tmp_path):
    store.add(write_kohya_lora(tmp_path / "sdxl-ish.safetensors", tiny_unet, layers=("no-such-layer",), extra_layers=MISSING_LAYERS),
              "nothing", "lora")
    with pytest.raises(InvalidInput, match="changes nothing: none of its 2 layers matches") as error:
        _paint(tiny_models, store, tmp_path / "out", lora="nothing")
    assert error.value.field == "lora" and not (tmp_path / "out").exists()


def test_a_dora_lora_is_refused_at_registration_instead_of_losing_its_scales(tiny_unet, tmp_path):
    path = write_kohya_lora(tmp_path / "detail-dora.safetensors", tiny_unet, dora=True)
    with pytest.raises(InvalidInput, match=r"is a DoRA file \(\d+ layers with dora_scale weights\)") as error:
        ModelStore(tmp_path / "store").add(path, "detail", "lora")
    assert "plain LoRA" in error.value.hint
