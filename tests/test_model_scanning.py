"""Pointing Avatar Foundry at an existing Automatic1111, ComfyUI or Hugging Face cache models folder
registers what can run, recursively, and says why it skips anything else."""

from __future__ import annotations

import shutil

import pytest
import torch

from backend.cli import main as cli_main
from backend.models.diffusion_loading import load_base_components, load_controlnet
from backend.models.discovery import scan_folder
from backend.models.store import ModelStore
from tests.fixtures.artist_models import small_sd15, small_sd15_controlnet, write_controlnet_file, write_sd15_checkpoint


@pytest.fixture(scope="module")
def small_models():
    unet, vae, text_encoder = small_sd15(seed=2)
    return unet, vae, text_encoder, small_sd15_controlnet(unet, seed=3)


def _skip_reasons(report) -> dict[str, str]:
    return {path.name: reason for path, reason in report.skipped}


def test_an_a1111_models_folder_registers_checkpoints_controlnets_and_loras(small_models, tiny_models, tmp_path, capsys):
    unet, vae, text_encoder, controlnet = small_models
    models = tmp_path / "stable-diffusion-webui" / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "ControlNet").mkdir()
    (models / "Lora").mkdir()
    write_sd15_checkpoint(models / "Stable-diffusion" / "v1-5-pruned-emaonly.safetensors", unet, vae, text_encoder)
    write_controlnet_file(models / "ControlNet" / "control_v11p_sd15_openpose.safetensors", controlnet, "ldm")
    (models / "ControlNet" / "control_v11p_sd15_openpose.yaml").write_text("model:\n  target: cldm.cldm.ControlLDM\n")
    torch.save({"control_model." + key: value for key, value in _ldm_state(controlnet).items()},
               models / "ControlNet" / "control_v11f1p_sd15_depth.pth")
    shutil.copy(tiny_models.paths.lora, models / "Lora" / "my-character.safetensors")
    store = ModelStore(tmp_path / "store")
    report = scan_folder(store, models)
    roles = {entry.name: (entry.role, entry.architecture) for entry in report.added}
    assert roles == {"v1-5-pruned-emaonly": ("base", "sd15"), "control_v11p_sd15_openpose": ("controlnet-pose", "controlnet-sd15"),
                     "my-character": ("lora", None)}
    reasons = _skip_reasons(report)
    assert "not a model" in reasons["control_v11p_sd15_openpose.yaml"] and "pickled" not in reasons["control_v11p_sd15_openpose.yaml"]
    assert "models convert" in reasons["control_v11f1p_sd15_depth.pth"]

    assert cli_main(["models", "convert", str(models / "ControlNet" / "control_v11f1p_sd15_depth.pth")]) == 0
    assert "wrote" in capsys.readouterr().out
    again = scan_folder(store, models)
    assert [(entry.name, entry.role) for entry in again.added] == [("control_v11f1p_sd15_depth", "controlnet-depth")]
    depth = load_controlnet(store.resolve("control_v11f1p_sd15_depth")).state_dict()
    assert all(torch.equal(depth[key], value) for key, value in controlnet.state_dict().items())
    assert load_base_components(store.resolve("v1-5-pruned-emaonly")).unet.config.cross_attention_dim == 48


def _ldm_state(controlnet) -> dict:
    from backend.models.single_file_export import _controlnet_key_mapper

    mapper = _controlnet_key_mapper(controlnet.config.layers_per_block)
    return {mapper(key): value.clone() for key, value in controlnet.state_dict().items()}


def test_a_pickle_of_anything_but_tensors_is_refused_by_convert(tmp_path, capsys):
    torch.save({"weights": torch.zeros(2), "callback": ModelStore}, tmp_path / "odd.pth")
    assert cli_main(["models", "convert", str(tmp_path / "odd.pth")]) == 2
    assert "cannot be read as plain weights" in capsys.readouterr().err
    assert not (tmp_path / "odd.safetensors").exists()


def test_a_comfyui_models_folder_is_walked_into_subfolders(small_models, tmp_path):
    unet, vae, text_encoder, controlnet = small_models
    models = tmp_path / "ComfyUI" / "models"
    (models / "checkpoints" / "sd15").mkdir(parents=True)
    (models / "controlnet" / "SD1.5").mkdir(parents=True)
    (models / "loras").mkdir()
    write_sd15_checkpoint(models / "checkpoints" / "sd15" / "dreamshaper_8.safetensors", unet, vae, text_encoder)
    write_controlnet_file(models / "controlnet" / "SD1.5" / "diffusers_normal.safetensors", controlnet, "diffusers")
    write_controlnet_file(models / "controlnet" / "SD1.5" / "t2i-depth-unprefixed.safetensors", controlnet, "ldm-unprefixed")
    (models / "loras" / "put_loras_here").write_text("")
    report = scan_folder(ModelStore(tmp_path / "store"), models)
    assert {entry.name: entry.role for entry in report.added} == {
        "dreamshaper_8": "base", "diffusers_normal": "controlnet-normal", "t2i-depth-unprefixed": "controlnet-depth"}
    assert "not a .safetensors file" in _skip_reasons(report)["put_loras_here"]


def test_a_hugging_face_cache_is_named_by_repository_and_fp16_variants_load(tiny_models, tmp_path):
    from diffusers import ControlNetModel, StableDiffusionPipeline

    hub = tmp_path / "hf-home" / "hub"
    pipeline_entry = hub / "models--stable-diffusion-v1-5--stable-diffusion-v1-5"
    snapshot = pipeline_entry / "snapshots" / "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"
    StableDiffusionPipeline.from_pretrained(tiny_models.paths.base, local_files_only=True).save_pretrained(snapshot, variant="fp16")
    (pipeline_entry / "refs").mkdir()
    (pipeline_entry / "refs" / "main").write_text(snapshot.name)
    controlnet_entry = hub / "models--lllyasviel--control_v11p_sd15_openpose"
    ControlNetModel.from_pretrained(tiny_models.paths.controlnets["pose"], local_files_only=True).save_pretrained(
        controlnet_entry / "snapshots" / "9ae28a1b", variant="fp16")
    (hub / "models--empty--download" / "blobs").mkdir(parents=True)
    store = ModelStore(tmp_path / "store")
    report = scan_folder(store, hub)
    assert {entry.name: entry.role for entry in report.added} == {
        "stable-diffusion-v1-5": "base", "control_v11p_sd15_openpose": "controlnet-pose"}
    assert "without a downloaded snapshot" in _skip_reasons(report)["models--empty--download"]
    assert any(snapshot.joinpath("unet").glob("*.fp16.safetensors"))
    base = load_base_components(store.resolve("stable-diffusion-v1-5"))
    reference = load_base_components(tiny_models.store.resolve(tiny_models.names["base"]))
    assert torch.equal(base.unet.conv_in.weight, reference.unet.conv_in.weight)
    load_controlnet(store.resolve("control_v11p_sd15_openpose"), base=base)


@pytest.mark.parametrize("index_naming", ["diffusers", "dotted-variant"])
def test_a_sharded_fp16_variant_pipeline_folder_registers_and_loads(tiny_models, tmp_path, index_naming):
    """Shards indexed by ``*.safetensors.index.fp16.json`` (what save_pretrained and the Hub write) or by
    ``*.fp16.safetensors.index.json`` (what other tools write) load as the weights they hold."""
    from diffusers import StableDiffusionPipeline

    folder = tmp_path / "sd-sharded"
    StableDiffusionPipeline.from_pretrained(tiny_models.paths.base, local_files_only=True).save_pretrained(
        folder, variant="fp16", max_shard_size="40KB")
    indexes = sorted(folder.glob("*/*.safetensors.index.fp16.json"))
    assert {index.parent.name for index in indexes} >= {"unet", "vae"}
    if index_naming == "dotted-variant":
        for index in indexes:
            index.rename(index.parent / index.name.replace(".safetensors.index.fp16.json", ".fp16.safetensors.index.json"))
    store = ModelStore(tmp_path / "store")
    store.add(folder, "sharded", "base")
    base = load_base_components(store.resolve("sharded"))
    reference = load_base_components(tiny_models.store.resolve(tiny_models.names["base"]))
    for part in ("unet", "vae", "text_encoder"):
        expected = getattr(reference, part).state_dict()
        assert all(torch.equal(getattr(base, part).state_dict()[key], expected[key]) for key in expected), part
