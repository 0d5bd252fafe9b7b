"""What Avatar Foundry cannot run is refused when it is registered (or, for a LoRA that does not fit
its base, before a job writes anything), with a message naming what the file is and the fix."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from backend.errors import InvalidInput
from backend.models.store import ModelStore
from backend.models.tiny import TinySpec, build_tiny_base, write_tiny_lora
from backend.multiview.generation import generate_multiview
from tests.test_multiview_generation import settings_for, write_bundle


def _file(path, names):
    save_file({name: torch.zeros(2, 2) for name in names}, str(path))
    return path


@pytest.mark.parametrize("names, family", [
    (["model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"], "SDXL"),
    (["model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale"], "Flux"),
])
def test_sdxl_and_flux_single_files_are_refused_at_registration(tmp_path, names, family):
    store = ModelStore(tmp_path / "store")
    with pytest.raises(InvalidInput, match=family) as error:
        store.add(_file(tmp_path / "model.safetensors", names), "big", "base")
    assert "SD 1.5" in error.value.hint and not store.list()


def test_an_sdxl_pipeline_folder_is_refused_at_registration(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models.paths.base, tmp_path / "stable-diffusion-xl-base-1.0")
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="StableDiffusionXLPipeline", text_encoder_2=["transformers", "CLIPTextModelWithProjection"])
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(InvalidInput, match="StableDiffusionXLPipeline") as error:
        ModelStore(tmp_path / "store").add(folder, "sdxl", "base")
    assert "SDXL" in error.value.hint


def test_an_sdxl_controlnet_folder_is_refused_at_registration(tmp_path):
    from diffusers import ControlNetModel

    controlnet = ControlNetModel(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                 layers_per_block=1, cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
                                 conditioning_embedding_out_channels=(8, 16), addition_embed_type="text_time",
                                 addition_time_embed_dim=8, projection_class_embeddings_input_dim=8 * 6 + 32)
    controlnet.save_pretrained(tmp_path / "controlnet-openpose-sdxl-1.0")
    with pytest.raises(InvalidInput, match="SDXL ControlNet"):
        ModelStore(tmp_path / "store").add(tmp_path / "controlnet-openpose-sdxl-1.0", "xl-pose", "controlnet-pose")


@pytest.mark.parametrize("name, kind", [
    ("lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a", "LoHa"),
    ("lora_unet_down_blocks_0_attentions_0_proj_in.lokr_w1", "LoKr"),
])
def test_lycoris_files_are_refused_naming_their_kind(tmp_path, name, kind):
    with pytest.raises(InvalidInput, match=f"LyCORIS {kind}") as error:
        ModelStore(tmp_path / "store").add(_file(tmp_path / "style.safetensors", [name]), "style", "lora")
    assert "plain LoRA" in error.value.hint


def test_an_sdxl_lora_is_refused_at_registration(tmp_path):
    names = ["lora_unet_input_blocks_4_1_proj_in.lora_down.weight", "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"]
    with pytest.raises(InvalidInput, match="SDXL LoRA"):
        ModelStore(tmp_path / "store").add(_file(tmp_path / "xl-style.safetensors", names), "xl-style", "lora")


def test_a_lora_for_another_base_size_fails_naming_the_lora_before_anything_is_written(tiny_models, tmp_path):
    other_unet = build_tiny_base(TinySpec(cross_attention_dim=64), tiny_models.paths.base / "tokenizer")[0]
    lora = write_tiny_lora(tmp_path / "wide-style.safetensors", other_unet, seed=4)
    store = tiny_models.store
    store.add(lora, "wide-style", "lora", replace=True)
    bundle = write_bundle(tmp_path / "bundle", yaws=(0.0,))
    settings = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={},
                            lora="wide-style")
    try:
        with pytest.raises(InvalidInput, match="LoRA wide-style.safetensors does not fit the base model") as error:
            generate_multiview(bundle, tmp_path / "out", settings, store.resolve)
    finally:
        store.remove("wide-style")
    assert error.value.field == "lora" and "SD 1.5 LoRAs" in error.value.hint
    assert not (tmp_path / "out").exists()


def _control_lora_names() -> list[str]:
    """Key names of Stability's control-lora-*-rank128.safetensors: LoRA differences of the UNet encoder plus
    a ControlNet's own hint encoder and zero convolutions, marked by ``lora_controlnet``."""
    return ["lora_controlnet", "input_blocks.1.1.proj_in.up", "input_blocks.1.1.proj_in.down", "input_hint_block.0.weight",
            "time_embed.0.weight", "zero_convs.0.0.weight", "middle_block_out.0.weight"]


def test_a_stability_control_lora_is_named_and_refused_as_lora_controlnet_and_in_scans(tmp_path):
    from backend.models.discovery import scan_folder

    (tmp_path / "models").mkdir()
    path = _file(tmp_path / "models" / "control-lora-depth-rank128.safetensors", _control_lora_names())
    store = ModelStore(tmp_path / "store")
    for role in ("lora", "controlnet-depth"):
        with pytest.raises(InvalidInput, match="is a Stability Control-LoRA") as error:
            store.add(path, "depth", role)
        assert "full ControlNet" in error.value.hint
    assert "Stability Control-LoRA" in scan_folder(store, tmp_path / "models").skipped[0][1] and not store.list()


def test_t2i_adapters_are_named_as_such_in_single_files_and_folders(tmp_path):
    from diffusers import T2IAdapter

    single = _file(tmp_path / "t2iadapter_depth_sd15v2.safetensors", ["body.0.block1.weight", "body.0.block2.weight", "conv_in.weight"])
    with pytest.raises(InvalidInput, match="is a T2I-Adapter, not a ControlNet"):
        ModelStore(tmp_path / "store").add(single, "depth", "controlnet-depth")
    T2IAdapter(in_channels=3, channels=(32, 32), num_res_blocks=1, downscale_factor=8).save_pretrained(tmp_path / "t2i-adapter-depth-midas")
    with pytest.raises(InvalidInput, match="is a T2I-Adapter, not a ControlNet") as error:
        ModelStore(tmp_path / "store").add(tmp_path / "t2i-adapter-depth-midas", "depth", "controlnet-depth")
    assert "SDXL" not in error.value.message + error.value.hint


def test_a_pipeline_folder_with_an_inpainting_unet_is_refused_at_registration(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models.paths.base, tmp_path / "sd-1.5-inpainting")
    config = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps({**config, "in_channels": 9}))
    with pytest.raises(InvalidInput, match="is an inpainting model: its UNet takes 9 input channels") as error:
        ModelStore(tmp_path / "store").add(folder, "inpaint", "base")
    assert "text-to-image version" in error.value.hint
