"""Textual-inversion embeddings as A1111 keeps them (``embeddings/*.safetensors``): registered as
embeddings (never as LoRAs), used by their trigger word in prompts and negative prompts (also in
ComfyUI's ``embedding:name`` syntax), and one made for another text-encoder width refused before
anything is painted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from backend.cli import main as cli_main
from backend.errors import InvalidInput
from backend.models.discovery import scan_folder
from backend.models.store import ModelStore
from backend.multiview.generation import embeddings_in_prompts, generate_multiview
from tests.fixtures.artist_models import write_a1111_embedding
from tests.test_multiview_generation import settings_for, write_bundle


@pytest.fixture
def store(tiny_models, tmp_path):
    store = ModelStore(tmp_path / "store")
    store.add(tiny_models.paths.base, tiny_models.names["base"], "base")
    store.add(tiny_models.paths.controlnets["pose"], tiny_models.names["controlnet-pose"], "controlnet-pose")
    return store


def _text_width(tiny_models) -> int:
    import json

    return json.loads((tiny_models.paths.base / "text_encoder" / "config.json").read_text())["hidden_size"]


def _paint(tiny_models, store, out, **overrides) -> np.ndarray:
    settings = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={},
                            resolution=16, attributes_per_image=0, **overrides)
    settings.embeddings = embeddings_in_prompts(store, settings)
    dataset = generate_multiview(write_bundle(out.parent / f"{out.name}-bundle", yaws=(0.0,)), out, settings, store.resolve)
    return np.asarray(Image.open(out / dataset.items[0].file), dtype=np.int16)


def test_an_a1111_embedding_is_used_by_its_trigger_word_in_the_negative_prompt(tiny_models, store, tmp_path):
    vectors = torch.randn(2, _text_width(tiny_models), generator=torch.Generator().manual_seed(0)) * 3
    folder = tmp_path / "webui" / "embeddings"
    folder.mkdir(parents=True)
    write_a1111_embedding(folder / "EasyNegative.safetensors", vectors)
    write_a1111_embedding(folder / "bad-hands.safetensors", vectors.flip(0), key="string_to_param.*")
    report = scan_folder(store, folder)
    assert {(entry.name, entry.role, entry.format) for entry in report.added} == {
        ("EasyNegative", "embedding", "embedding"), ("bad-hands", "embedding", "embedding")}

    plain = _paint(tiny_models, store, tmp_path / "plain", negative_prompt="blurry")
    with_trigger = _paint(tiny_models, store, tmp_path / "trigger", negative_prompt="blurry, easynegative")
    comfy = _paint(tiny_models, store, tmp_path / "comfy", negative_prompt="blurry, embedding:EasyNegative.safetensors")
    write_a1111_embedding(folder / "EasyNegative.safetensors", torch.randn(2, vectors.shape[1], generator=torch.Generator().manual_seed(1)) * 3)
    other_vectors = _paint(tiny_models, store, tmp_path / "other", negative_prompt="blurry, easynegative")
    assert np.abs(with_trigger - plain).max() > 0
    assert np.abs(with_trigger - other_vectors).max() > 0, "the image depends on the embedding's vectors, not on the word's letters"
    assert np.array_equal(with_trigger, comfy), "ComfyUI's embedding: syntax is the same word"
    settings = settings_for(tiny_models, negative_prompt="blurry, EASYNEGATIVE.", style="bad-handsome heads")
    assert embeddings_in_prompts(store, settings) == ["EasyNegative"]  # whole words, any case, before a full stop


def test_an_embedding_of_another_text_encoder_width_is_refused_before_painting(tiny_models, store, tmp_path):
    write_a1111_embedding(tmp_path / "sd2-style.safetensors", torch.zeros(1, 1024))
    store.add(tmp_path / "sd2-style.safetensors", "sd2-style", "embedding")
    settings = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={},
                            style="a head, sd2-style")
    settings.embeddings = embeddings_in_prompts(store, settings)
    with pytest.raises(InvalidInput, match=r"made for a 1024-wide text encoder \(SD 2.x\).*32-wide") as error:
        generate_multiview(write_bundle(tmp_path / "bundle", yaws=(0.0,)), tmp_path / "out", settings, store.resolve)
    assert error.value.field == "embeddings" and not (tmp_path / "out").exists()


def test_an_embedding_given_the_lora_role_is_refused_naming_the_role_that_fits(tmp_path, capsys):
    path = write_a1111_embedding(tmp_path / "easynegative.safetensors", torch.zeros(2, 768))
    with pytest.raises(InvalidInput, match="is a textual-inversion embedding, not a LoRA") as error:
        ModelStore(tmp_path / "store").add(path, "easynegative", "lora")
    assert "--role embedding" in error.value.hint
    assert cli_main(["models", "add", str(path), "--as", "easynegative", "--data-dir", str(tmp_path / "data")]) == 0
    assert "(embedding, embedding)" in capsys.readouterr().out  # the role told from the file


def test_an_a1111_pt_embedding_converts_to_the_safetensors_layout_a1111_writes(tmp_path):
    vectors = torch.randn(3, 768)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": "charturner", "step": 1500},
               tmp_path / "charturner.pt")
    assert cli_main(["models", "convert", str(tmp_path / "charturner.pt")]) == 0
    entry = ModelStore(tmp_path / "store").add(tmp_path / "charturner.safetensors", "charturner", "embedding")
    from backend.models.textual_inversion import embedding_vectors

    assert torch.equal(embedding_vectors(entry.path), vectors)


def test_every_vector_of_a_multi_vector_embedding_with_a_capitalised_name_reaches_the_text_encoder(tiny_models, store, tmp_path):
    """diffusers finds the extra vectors only by the lower-case word; the second vector must count too."""
    from backend.multiview.painter import EMBEDDING_KEY_PREFIX, Painter

    width = _text_width(tiny_models)
    first = torch.randn(1, width, generator=torch.Generator().manual_seed(2)) * 3
    negatives = []
    for seed in (3, 4):
        second = torch.randn(1, width, generator=torch.Generator().manual_seed(seed)) * 3
        path = write_a1111_embedding(tmp_path / f"BadDream{seed}.safetensors", torch.cat([first, second]))
        entry = store.add(path, "BadDream", "embedding", replace=True)
        settings = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={})
        entries = {"base": store.resolve(tiny_models.names["base"]), "pose": store.resolve(tiny_models.names["controlnet-pose"]),
                   EMBEDDING_KEY_PREFIX + entry.name: entry}
        painter = Painter.load(entries, settings, device=torch.device("cpu"))
        negatives.append(painter.embeddings("a head", "BadDream, blurry", guidance=7.5)[1])
    assert (negatives[0] - negatives[1]).abs().max() > 1e-3
