"""Single checkpoint files as artists have them register and load offline, with no config folder:
the architecture is told from the file, its configs ship with the project, the tokenizer is CLIP's."""

from __future__ import annotations

import pytest
import torch

from backend.models.clip_tokenizer import clip_tokenizer
from backend.models.diffusion_loading import load_base_components, load_base_scheduler, load_controlnet
from backend.models.store import ModelStore, tensor_shapes
from tests.fixtures.artist_models import (small_sd15, small_sd15_controlnet, write_controlnet_file,
                                          write_sd15_checkpoint)


@pytest.fixture(autouse=True)
def offline_with_an_empty_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))


@pytest.fixture(scope="module")
def sd15_models():
    return small_sd15(seed=0)


def test_clip_tokenizer_gives_clips_own_ids():
    assert clip_tokenizer()("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert clip_tokenizer("!")("a cat", padding="max_length").input_ids[4:6] == [0, 0]  # SD 2.x pads with '!'


def test_a_v1_5_single_file_registers_without_config_and_loads_the_same_weights(sd15_models, tmp_path):
    unet, vae, text_encoder = sd15_models
    path = write_sd15_checkpoint(tmp_path / "v1-5-pruned-emaonly.safetensors", unet, vae, text_encoder)
    names = tensor_shapes(path)
    assert "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight" in names
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in names
    assert "first_stage_model.encoder.down.0.block.0.conv1.weight" in names
    entry = ModelStore(tmp_path / "store").add(path, "sd15", "base")
    assert entry.architecture == "sd15" and entry.config is None
    base = load_base_components(ModelStore(tmp_path / "store").resolve("sd15"))
    for part, original in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        loaded, expected = getattr(base, part).state_dict(), original.state_dict()
        assert loaded.keys() == expected.keys(), part
        assert all(torch.equal(loaded[key], expected[key]) for key in expected), part
    assert list(base.unet.config.block_out_channels) == [32, 32, 64, 64]  # widths read from the file
    assert base.prediction_type == "epsilon" and type(base.scheduler).__name__ == "PNDMScheduler"
    assert base.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert base.default_image_size == 512  # SD 1.5's native size, from the shipped config


def test_a_checkpoint_with_ema_weights_loads_the_ema_unet(sd15_models, tmp_path):
    unet, vae, text_encoder = sd15_models
    path = write_sd15_checkpoint(tmp_path / "v1-5-pruned.safetensors", unet, vae, text_encoder, ema_offset=0.5)
    ModelStore(tmp_path / "store").add(path, "sd15-ema", "base")
    loaded = load_base_components(ModelStore(tmp_path / "store").resolve("sd15-ema")).unet.state_dict()
    original = unet.state_dict()
    assert all(torch.allclose(loaded[key], original[key] + 0.5) for key in original)


@pytest.mark.parametrize("layout", ["ldm", "ldm-unprefixed", "diffusers"])
def test_controlnet_single_files_in_each_layout_register_and_load_without_config(sd15_models, tmp_path, layout):
    controlnet = small_sd15_controlnet(sd15_models[0])
    path = write_controlnet_file(tmp_path / f"control_v11p_sd15_openpose-{layout}.safetensors", controlnet, layout)
    store = ModelStore(tmp_path / "store")
    entry = store.add(path, "pose", "controlnet-pose")
    assert entry.architecture == "controlnet-sd15"
    loaded = load_controlnet(store.resolve("pose")).state_dict()
    expected = controlnet.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


@pytest.mark.parametrize("file_name, expected", [("v1-5-pruned-emaonly.safetensors", "sd15"),
                                                 ("v2-1_512-ema-pruned.safetensors", "sd21-base"),
                                                 ("v2-1_768-ema-pruned.safetensors", "sd21-v")])
def test_real_size_checkpoints_are_told_apart_and_get_exactly_the_shipped_configs(file_name, expected):
    """Honesty check of the width reading: the tensors of a real-size model give back the public config."""
    from backend.models.architectures import BASE_ARCHITECTURES, base_configs, infer_base_architecture
    from tests.fixtures.artist_models import real_size_shapes

    shapes = real_size_shapes(expected, file_layers=24 if expected != "sd15" else None)  # SD 2 files hold all 24 OpenCLIP blocks
    assert infer_base_architecture(shapes, file_name) == expected
    assert base_configs(expected, shapes) == BASE_ARCHITECTURES[expected]
    prediction = BASE_ARCHITECTURES[expected]["scheduler"]["prediction_type"]
    assert prediction == ("v_prediction" if expected == "sd21-v" else "epsilon")


def test_a_real_size_sd15_controlnet_gets_exactly_the_shipped_config():
    from backend.models.architectures import CONTROLNET_ARCHITECTURES, controlnet_config, infer_controlnet_architecture
    from tests.fixtures.artist_models import real_size_shapes

    shapes = real_size_shapes("controlnet-sd15")
    assert infer_controlnet_architecture(shapes, "control_v11p_sd15_openpose.safetensors") == "controlnet-sd15"
    assert controlnet_config(shapes) == CONTROLNET_ARCHITECTURES["controlnet-sd15"]


@pytest.mark.slow
def test_an_sd21_768_single_file_loads_with_openclip_text_encoder_and_v_prediction(tmp_path):
    from tests.fixtures.artist_models import small_sd21, write_sd21_checkpoint

    unet, vae, text_encoder = small_sd21(seed=5)
    path = write_sd21_checkpoint(tmp_path / "v2-1_768-ema-pruned.safetensors", unet, vae, text_encoder)
    assert "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight" in tensor_shapes(path)
    store = ModelStore(tmp_path / "store")
    assert store.add(path, "sd21", "base").architecture == "sd21-v"
    base = load_base_components(store.resolve("sd21"))
    assert base.prediction_type == "v_prediction" and base.default_image_size == 768 and base.unet.config.use_linear_projection
    assert base.text_encoder.config.num_hidden_layers == 23
    loaded, expected = base.text_encoder.state_dict(), text_encoder.state_dict()
    assert all(torch.equal(loaded[key], expected[key]) for key in loaded)  # the first 23 blocks, q/k/v unpacked
    assert torch.equal(base.unet.conv_in.weight, unet.conv_in.weight)
    assert base.tokenizer("a cat", padding="max_length").input_ids[3:5] == [49407, 0]
    finetune = tmp_path / "anime-sd2-finetune.safetensors"  # A1111 keeps v2-inference.yaml (512 base, epsilon) beside it
    path.rename(finetune)
    finetune.with_suffix(".yaml").write_text(V2_INFERENCE_YAML)
    entry = store.add(finetune, "anime-sd2", "base")
    assert entry.architecture == "sd21-base" and load_base_scheduler(entry).config.prediction_type == "epsilon"


V2_INFERENCE_V_YAML = """model:
  base_learning_rate: 1.0e-4
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    linear_start: 0.00085
    linear_end: 0.0120
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: 64
    channels: 4
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        use_linear_in_transformer: True
        context_dim: 1024
"""
V2_INFERENCE_YAML = V2_INFERENCE_V_YAML.replace('    parameterization: "v"\n', "")


@pytest.mark.parametrize("file_name, yaml_text, expected", [
    ("anime-sd2-finetune.safetensors", V2_INFERENCE_YAML, "sd21-base"),
    ("anime-sd2-finetune.safetensors", V2_INFERENCE_V_YAML, "sd21-v"),
    ("v2-1_512-ema-pruned.safetensors", V2_INFERENCE_V_YAML, "sd21-v"),  # the yaml beside the file wins over its name
    ("anime-sd2-finetune.safetensors", None, "sd21-v"),  # nothing says: diffusers' assumption
    ("anime-sd2-finetune.safetensors", "model: [unclosed", "sd21-v"),  # an unreadable yaml says nothing
])
def test_the_a1111_yaml_beside_an_sd2_checkpoint_tells_512_base_from_768_v(tmp_path, file_name, yaml_text, expected):
    from backend.models.architectures import a1111_prediction_type, infer_base_architecture
    from tests.fixtures.artist_models import real_size_shapes

    checkpoint = tmp_path / file_name
    if yaml_text is not None:
        checkpoint.with_suffix(".yaml").write_text(yaml_text)
    shapes = real_size_shapes("sd21-v", file_layers=24)
    assert infer_base_architecture(shapes, file_name, a1111_prediction_type(checkpoint)) == expected


def test_a_real_size_sd21_controlnet_gets_exactly_the_shipped_config():
    from backend.models.architectures import CONTROLNET_ARCHITECTURES, controlnet_config, infer_controlnet_architecture
    from tests.fixtures.artist_models import real_size_shapes

    shapes = real_size_shapes("controlnet-sd21")
    assert infer_controlnet_architecture(shapes, "controlnet-sd21-openpose.safetensors") == "controlnet-sd21"
    assert controlnet_config(shapes, "controlnet-sd21") == CONTROLNET_ARCHITECTURES["controlnet-sd21"]
    assert CONTROLNET_ARCHITECTURES["controlnet-sd21"]["cross_attention_dim"] == 1024


def test_an_sd21_controlnet_single_file_registers_and_loads_without_config(tmp_path):
    from diffusers import ControlNetModel

    from tests.fixtures.artist_models import SD21_UNET_WIDTHS, small_sd21

    unet = small_sd21(seed=8)[0]
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 96, 256))
    with torch.no_grad():
        controlnet.controlnet_mid_block.weight.add_(0.01)
    path = write_controlnet_file(tmp_path / "controlnet-sd21-depth.safetensors", controlnet, "ldm")
    store = ModelStore(tmp_path / "store")
    assert store.add(path, "sd21-depth", "controlnet-depth").architecture == "controlnet-sd21"
    loaded = load_controlnet(store.resolve("sd21-depth"))
    assert list(loaded.config.block_out_channels) == list(SD21_UNET_WIDTHS) and loaded.config.use_linear_projection
    expected = controlnet.state_dict()
    assert all(torch.equal(loaded.state_dict()[key], expected[key]) for key in expected)
