"""A separate VAE as artists keep one (A1111's ``vae-ft-mse-840000-ema-pruned.safetensors`` in LDM
names, the diffusers folder ``sd-vae-ft-mse``): registered with role ``vae``, chosen per job, and
required, with a clear message, by a checkpoint saved without VAE weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from backend.cli import main as cli_main
from backend.errors import InvalidInput
from backend.models.diffusion_loading import load_base_components
from backend.models.discovery import scan_folder
from backend.models.store import ModelStore
from backend.multiview.generation import generate_multiview
from tests.fixtures.artist_models import small_sd15, write_checkpoint_without_vae, write_vae_file
from tests.test_multiview_generation import settings_for, write_bundle


@pytest.fixture(scope="module")
def sd15_parts():
    unet, vae, text_encoder = small_sd15(seed=6)
    return unet, vae, text_encoder, small_sd15(seed=7)[1]


def _same_weights(model, reference) -> bool:
    loaded, expected = model.state_dict(), reference.state_dict()
    return loaded.keys() == expected.keys() and all(torch.equal(loaded[key], expected[key]) for key in expected)


@pytest.mark.parametrize("prefix", ["", "first_stage_model."])
def test_a_vae_file_in_ldm_names_registers_as_a_vae_and_replaces_the_checkpoints_own(sd15_parts, tmp_path, capsys, prefix):
    unet, vae, text_encoder, other_vae = sd15_parts
    models = tmp_path / "webui" / "models"
    (models / "VAE").mkdir(parents=True)
    path = write_vae_file(models / "VAE" / "vae-ft-mse-840000-ema-pruned.safetensors", other_vae, prefix)
    data = tmp_path / "data"
    assert cli_main(["models", "add", str(path), "--as", "mse", "--data-dir", str(data)]) == 0
    assert "(vae, single-file)" in capsys.readouterr().out
    store = ModelStore(data / "models")
    with pytest.raises(InvalidInput, match="is a VAE, not a LoRA"):
        store.add(path, "mse-as-lora", "lora")
    checkpoint = write_checkpoint_without_vae(tmp_path / "merge-novae.safetensors", unet, vae, text_encoder)
    assert cli_main(["models", "add", str(checkpoint), "--as", "merge", "--data-dir", str(data)]) == 0  # a VAE per job completes it
    assert "note: base model 'merge' (merge-novae.safetensors) holds no VAE weights" in capsys.readouterr().out
    with pytest.raises(InvalidInput, match="holds no VAE weights") as error:
        load_base_components(store.resolve("merge"))
    assert "--role vae" in error.value.hint and "--vae NAME" in error.value.hint and error.value.field == "vae"
    base = load_base_components(store.resolve("merge"), vae=store.resolve("mse"))
    assert _same_weights(base.vae, other_vae) and _same_weights(base.unet, unet)


def test_a_diffusers_vae_folder_is_scanned_as_a_vae_and_one_of_16_latent_channels_is_refused(sd15_parts, tmp_path):
    from diffusers import AutoencoderKL

    sd15_parts[3].save_pretrained(tmp_path / "models" / "sd-vae-ft-mse")
    AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  latent_channels=16).save_pretrained(tmp_path / "models" / "flux-ae")
    report = scan_folder(ModelStore(tmp_path / "store"), tmp_path / "models")
    assert [(entry.name, entry.role) for entry in report.added] == [("sd-vae-ft-mse", "vae")]
    assert "16 latent channels" in dict((path.name, reason) for path, reason in report.skipped)["flux-ae"]


def test_a_job_decodes_with_the_vae_it_names(tiny_models, tmp_path):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_models.paths.base / "vae")
    with torch.no_grad():
        vae.decoder.conv_out.bias.add_(0.5)  # a brighter decoder
    vae.save_pretrained(tmp_path / "bright-vae")
    store = ModelStore(tmp_path / "store")
    store.add(tiny_models.paths.base, "sd", "base")
    store.add(tiny_models.paths.controlnets["pose"], "pose", "controlnet-pose")
    store.add(tmp_path / "bright-vae", "bright", "vae")
    images = {}
    for vae_name in (None, "bright"):
        settings = settings_for(tiny_models, base="sd", controlnets={"pose": "pose"}, control_weights={}, resolution=16, vae=vae_name)
        out = tmp_path / f"out-{vae_name}"
        dataset = generate_multiview(write_bundle(tmp_path / f"bundle-{vae_name}", yaws=(0.0,)), out, settings, store.resolve)
        images[vae_name] = np.asarray(Image.open(out / dataset.items[0].file), dtype=np.float32)
    assert images["bright"].mean() > images[None].mean() + 10
