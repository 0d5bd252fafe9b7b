"""The model store and offline loading: users register local weights by name and get clear errors
for anything missing, moved or half downloaded, before any loading starts."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from backend.cli import main as cli_main
from backend.errors import InvalidInput, ModelMissing
from backend.models.diffusion_loading import load_base_components, load_controlnet
from backend.models.store import REGISTRY_NAME, ModelStore
from backend.models.tiny import TinySpec, build_tiny_base, build_tiny_controlnet


def test_registered_models_survive_a_restart_and_keep_role_and_format(tiny_models):
    reopened = ModelStore(tiny_models.store.root)
    by_name = {entry.name: entry for entry in reopened.list()}
    assert by_name[tiny_models.names["base"]].format == "diffusers"
    assert by_name[tiny_models.names["base-single-file"]].format == "single-file"
    assert by_name[tiny_models.names["controlnet-depth"]].role == "controlnet-depth"
    registry = json.loads((tiny_models.store.root / REGISTRY_NAME).read_text())
    assert registry["version"] == 1 and len(registry["models"]) == 7


def test_base_model_loads_the_same_weights_from_folder_and_single_file(tiny_models):
    folder = load_base_components(tiny_models.store.resolve(tiny_models.names["base"]))
    single = load_base_components(tiny_models.store.resolve(tiny_models.names["base-single-file"]))
    for part in ("unet", "vae", "text_encoder"):
        expected, actual = getattr(folder, part).state_dict(), getattr(single, part).state_dict()
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[key], actual[key]) for key in expected), part
    assert folder.default_image_size == tiny_models.spec.image_size
    tokens = single.tokenizer("a front view of a stylized head").input_ids
    assert tokens[0] == single.tokenizer.bos_token_id and tokens[-1] == single.tokenizer.eos_token_id and len(tokens) > 4


def test_controlnet_loads_and_one_built_for_another_base_size_is_refused(tiny_models, tmp_path):
    base = load_base_components(tiny_models.store.resolve(tiny_models.names["base"]))
    controlnet = load_controlnet(tiny_models.store.resolve(tiny_models.names["controlnet-pose"]), base=base)
    assert controlnet.config.block_out_channels == base.unet.config.block_out_channels
    other_unet = build_tiny_base(TinySpec(unet_channels=(8, 16)), tiny_models.paths.base / "tokenizer")[0]
    build_tiny_controlnet(other_unet, seed=3).save_pretrained(tmp_path / "other-controlnet")
    store = ModelStore(tmp_path / "store")
    store.add(tmp_path / "other-controlnet", "other-pose", "controlnet-pose")
    with pytest.raises(InvalidInput, match="does not fit the base model") as error:
        load_controlnet(store.resolve("other-pose"), base=base)
    assert error.value.field == "controlnet"


def test_single_file_controlnet_loads_the_same_weights_as_its_folder(tiny_models):
    folder = load_controlnet(tiny_models.store.resolve(tiny_models.names["controlnet-pose"])).state_dict()
    single = load_controlnet(tiny_models.store.resolve(tiny_models.names["controlnet-pose-single-file"])).state_dict()
    assert folder.keys() == single.keys()
    assert all(torch.equal(folder[key], single[key]) for key in folder)


def test_unknown_model_name_lists_what_is_registered(tiny_models):
    with pytest.raises(ModelMissing, match="no model named 'sd15'") as error:
        tiny_models.store.resolve("sd15")
    assert tiny_models.names["base"] in error.value.hint


def test_model_of_the_wrong_role_is_refused(tiny_models):
    with pytest.raises(InvalidInput, match="not 'base'"):
        tiny_models.store.resolve(tiny_models.names["controlnet-pose"], role="base")


def _copy_base(tiny_models, tmp_path):
    return shutil.copytree(tiny_models.paths.base, tmp_path / "sd")


def test_truncated_weights_are_reported_as_half_downloaded(tiny_models, tmp_path, tiny_model_store):
    folder = _copy_base(tiny_models, tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelMissing, match="truncated") as error:
        tiny_model_store.add(folder, "broken", "base")
    assert str(weights) in str(error.value)
    assert not tiny_model_store.registry_path.exists(), "a refused model must not be registered"


def test_missing_component_folder_is_named(tiny_models, tmp_path, tiny_model_store):
    folder = _copy_base(tiny_models, tmp_path)
    shutil.rmtree(folder / "vae")
    with pytest.raises(ModelMissing, match="missing the 'vae' folder"):
        tiny_model_store.add(folder, "no-vae", "base")


def test_unfinished_download_files_are_refused(tiny_models, tmp_path, tiny_model_store):
    folder = _copy_base(tiny_models, tmp_path)
    (folder / "text_encoder" / "model.safetensors.incomplete").write_bytes(b"")
    with pytest.raises(ModelMissing, match="unfinished download"):
        tiny_model_store.add(folder, "partial", "base")


def test_pickled_weights_are_never_accepted(tiny_models, tmp_path, tiny_model_store):
    folder = shutil.copytree(tiny_models.paths.controlnets["depth"], tmp_path / "cn")
    for weights in folder.glob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(ModelMissing, match="no .safetensors weights") as error:
        tiny_model_store.add(folder, "pickled", "controlnet-depth")
    assert "never unpickled" in error.value.hint


def test_folder_without_model_index_is_not_a_base_model(tiny_models, tiny_model_store):
    with pytest.raises(ModelMissing, match="no model_index.json"):
        tiny_model_store.add(tiny_models.paths.controlnets["pose"], "not-a-base", "base")


def test_single_file_base_of_no_shipped_structure_needs_a_local_config_folder(tiny_models, tiny_model_store):
    """The project's 2-level tiny model is SD 1.x-like but not SD 1.5's structure: --config is named as the fix."""
    with pytest.raises(InvalidInput, match="does not have its structure") as error:
        tiny_model_store.add(tiny_models.paths.base_single_file, "lonely", "base")
    assert error.value.field == "config" and "--config" in error.value.hint


def test_a_model_moved_after_registration_is_reported_at_resolve(tiny_models, tmp_path, tiny_model_store):
    folder = _copy_base(tiny_models, tmp_path)
    tiny_model_store.add(folder, "movable", "base")
    folder.rename(tmp_path / "elsewhere")
    with pytest.raises(ModelMissing, match="does not exist"):
        tiny_model_store.resolve("movable")


def test_names_are_unique_and_well_formed(tiny_models, tiny_model_store):
    tiny_model_store.add(tiny_models.paths.base, "sd", "base")
    with pytest.raises(InvalidInput, match="already registered"):
        tiny_model_store.add(tiny_models.paths.base, "sd", "base")
    with pytest.raises(InvalidInput, match="not allowed"):
        tiny_model_store.add(tiny_models.paths.base, "../sd", "base")
    with pytest.raises(InvalidInput, match="unknown model role"):
        tiny_model_store.add(tiny_models.paths.base, "sd2", "upscaler")


def test_cli_makes_sd21_like_tiny_models_registers_and_lists_them(tmp_path, capsys):
    assert cli_main(["make-tiny-models", str(tmp_path / "m"), "--variant", "sd21", "--register", "--prefix", "t21",
                     "--data-dir", str(tmp_path / "data")]) == 0
    assert cli_main(["models", "list", "--data-dir", str(tmp_path / "data")]) == 0
    listed = capsys.readouterr().out
    assert "t21-sd-single" in listed and "t21-controlnet-normal" in listed
    base = load_base_components(ModelStore(tmp_path / "data" / "models").resolve("t21-sd"))
    assert base.prediction_type == "v_prediction" and base.unet.config.use_linear_projection


def test_cli_add_reports_a_missing_path_with_exit_code_2(tmp_path, capsys):
    code = cli_main(["models", "add", str(tmp_path / "nowhere"), "--as", "x", "--role", "base", "--data-dir", str(tmp_path)])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_scanning_a_models_folder_registers_what_its_files_show_and_explains_the_rest(tiny_models, tmp_path, capsys):
    folder = tiny_models.paths.base.parent
    data_dir = tmp_path / "data"
    assert cli_main(["models", "scan", str(folder), "--data-dir", str(data_dir)]) == 0
    output = capsys.readouterr().out
    roles = {entry.name: entry.role for entry in ModelStore(data_dir / "models").list()}
    assert roles == {"tiny-sd": "base", "tiny-controlnet-pose": "controlnet-pose", "tiny-controlnet-depth": "controlnet-depth",
                     "tiny-controlnet-normal": "controlnet-normal", "tiny-style-lora": "lora"}
    assert "skipped" in output and "--config" in output  # the single-file checkpoints need a config folder
    assert cli_main(["models", "scan", str(folder), "--data-dir", str(data_dir)]) == 0
    assert "0 model(s) added" in capsys.readouterr().out
    assert cli_main(["models", "add", str(folder / "tiny-controlnet-depth"), "--as", "depth2", "--data-dir", str(data_dir)]) == 0
    assert ModelStore(data_dir / "models").resolve("depth2").role == "controlnet-depth"  # --role told by the files
    assert cli_main(["models", "add", str(folder / "tiny-sd.safetensors"), "--as", "x", "--data-dir", str(data_dir)]) == 2
    assert "--config" in capsys.readouterr().err  # recognised as a base model, but not of a shipped structure


def test_a_scanned_controlnet_whose_name_names_no_control_is_skipped_with_the_command_to_add_it(tiny_models, tiny_model_store, tmp_path):
    from backend.models.discovery import control_kind, scan_folder

    shutil.copytree(tiny_models.paths.controlnets["depth"], tmp_path / "models" / "my-controlnet")
    report = scan_folder(tiny_model_store, tmp_path / "models")
    assert not report.added and "models add" in report.skipped[0][1]
    assert control_kind("control_v11p_sd15_openpose") == "pose" and control_kind("sd21-depth-normal") is None
    with pytest.raises(InvalidInput, match="not a folder"):
        scan_folder(tiny_model_store, tmp_path / "nowhere")
