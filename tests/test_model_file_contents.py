"""Model files as downloads leave them: in a Hugging Face cache (hash-named blobs behind links), or a
.safetensors name over something else (a Git LFS pointer, a login page, a pickle); and scans of
folders with link loops or files of the same name in different folders."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from backend.cli import main as cli_main
from backend.errors import AvatarFoundryError
from backend.models.diffusion_loading import load_base_components
from backend.models.discovery import scan_folder
from backend.models.store import ModelStore
from tests.fixtures.artist_models import link_into_hub_cache, small_sd15, write_sd15_checkpoint

LFS_POINTER = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa\nsize 4265146304\n")
HTML_PAGE = "<!DOCTYPE html>\n<html><head><title>Sign in - Civitai</title></head><body>Please log in</body></html>\n"


@pytest.fixture(scope="module")
def sd15_checkpoint(tmp_path_factory):
    unet, vae, text_encoder = small_sd15(seed=4)
    path = write_sd15_checkpoint(tmp_path_factory.mktemp("downloads") / "v1-5-pruned-emaonly.safetensors", unet, vae, text_encoder)
    return path, unet


def test_a_single_file_in_the_hugging_face_cache_registers_and_loads_by_its_link(sd15_checkpoint, tmp_path):
    """The snapshot link, the blob itself and an A1111 models folder linked into the cache all register."""
    checkpoint, unet = sd15_checkpoint
    hub = tmp_path / "hf" / "hub"
    link = link_into_hub_cache(hub, "stable-diffusion-v1-5/stable-diffusion-v1-5", checkpoint, "v1-5-pruned-emaonly.safetensors")
    store = ModelStore(tmp_path / "store")
    entry = store.add(link, "sd15", "base")
    assert entry.path == link and entry.architecture == "sd15"
    blob = next((hub / "models--stable-diffusion-v1-5--stable-diffusion-v1-5" / "blobs").iterdir())
    assert store.add(blob, "sd15-blob", "base").path == link  # the hash-named blob is traded for its link
    assert cli_main(["models", "add", str(blob), "--as", "sd15-cli", "--data-dir", str(tmp_path / "data")]) == 0  # role told too
    a1111 = tmp_path / "webui" / "models" / "Stable-diffusion"
    a1111.mkdir(parents=True)
    os.symlink(link, a1111 / "v1-5-pruned-emaonly.safetensors")
    assert store.add(a1111 / "v1-5-pruned-emaonly.safetensors", "sd15-a1111", "base").architecture == "sd15"
    loaded = load_base_components(store.resolve("sd15"))
    assert torch.equal(loaded.unet.conv_in.weight, unet.conv_in.weight)
    report = scan_folder(ModelStore(tmp_path / "scanned"), hub)
    assert [(e.name, e.role) for e in report.added] == [("stable-diffusion-v1-5-v1-5-pruned-emaonly", "base")]


@pytest.mark.parametrize("content, expected", [
    (LFS_POINTER, "is a Git LFS pointer"), (HTML_PAGE, "is a web page"), (None, "pickled PyTorch checkpoint renamed")])
def test_what_is_not_safetensors_is_named_for_what_it_is(tmp_path, capsys, content, expected):
    """Registration, scans and 'models convert' say what the file really is; convert never shows a traceback."""
    path = tmp_path / "models" / "dreamshaper_8.safetensors"
    path.parent.mkdir()
    if content is None:
        torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)}}, path)
    else:
        path.write_text(content)
    store = ModelStore(tmp_path / "store")
    with pytest.raises(AvatarFoundryError, match=expected) as error:
        store.add(path, "dreamshaper", "base")
    assert "truncated" not in error.value.message and not store.list()
    assert expected in scan_folder(store, path.parent).skipped[0][1]
    code = cli_main(["models", "convert", str(path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if content is None:  # a renamed pickle is what convert is for: it keeps the file and writes the real one beside it
        assert code == 0 and path.with_suffix(".converted.safetensors").is_file()
    else:
        assert code == 2 and expected in captured.err


def test_a_scan_of_a_folder_with_a_link_loop_is_quiet_and_finds_each_model_once(sd15_checkpoint, tmp_path):
    """A link back up the tree (or a second link to the same folder) adds no lines and no duplicates."""
    checkpoint, _ = sd15_checkpoint
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    shutil.copy(checkpoint, models / "Stable-diffusion" / "v1-5-pruned-emaonly.safetensors")
    (models / "Stable-diffusion" / "notes.txt").write_text("my favourites")
    os.symlink(models, models / "Stable-diffusion" / "loop")
    os.symlink(models / "Stable-diffusion", models / "also-here")
    report = scan_folder(ModelStore(tmp_path / "store"), models)
    assert [entry.name for entry in report.added] == ["v1-5-pruned-emaonly"]
    assert [path.name for path, _ in report.skipped] == ["notes.txt"]


def test_files_of_the_same_name_in_different_folders_are_named_after_their_folder(sd15_checkpoint, tmp_path):
    checkpoint, _ = sd15_checkpoint
    models = tmp_path / "checkpoints"
    for folder in ("anime", "photoreal"):
        (models / folder).mkdir(parents=True)
        shutil.copy(checkpoint, models / folder / "model.safetensors")
    report = scan_folder(ModelStore(tmp_path / "store"), models)
    assert sorted(entry.name for entry in report.added) == ["anime-model", "photoreal-model"]
