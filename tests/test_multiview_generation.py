"""Multi-view generation end to end with the tiny models: the dataset a user gets, resuming,
sharding, cancelling, and bad inputs that must fail before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from backend.cli import main as cli_main
from backend.errors import Cancelled, InvalidInput, ModelMissing
from backend.formats.multiview_dataset import read_dataset
from backend.models.store import ModelStore
from backend.models.tiny import register_tiny_models
from backend.multiview.generation import MultiviewSettings, Shard, generate_multiview, write_manifest
from backend.progress import SilentProgress
from blender_addon.formats.cameras import orbit_label, view_class
from blender_addon.formats.errors import FormatError
from tests.fixtures.distributed import free_port
from tests.fixtures.server import REPO_ROOT, write_condition_bundle
from training.datasets.multiview import MultiviewImages


def write_bundle(root: Path, yaws=(0.0, 90.0, 180.0), drop_passes: tuple[str, ...] = ()) -> Path:
    """The server fixture's sphere bundle, its cameras moved to ``yaws`` (so back views exist)."""
    write_condition_bundle(root, views=len(yaws))
    manifest = json.loads((root / "conditions.json").read_text())
    for view, yaw in zip(manifest["views"], yaws):
        view.update(yaw=yaw, label=orbit_label(yaw, 0.0), view_class=view_class(yaw))
    for render in manifest["renders"]:
        for name in drop_passes:
            render["passes"].pop(name, None)
    (root / "conditions.json").write_text(json.dumps(manifest))
    return root


def settings_for(tiny_models, **overrides) -> MultiviewSettings:
    names = tiny_models.names
    values = dict(style="a cartoon character head", base=names["base"],
                  controlnets={"pose": names["controlnet-pose"], "depth": names["controlnet-depth"]},
                  control_weights={"depth": 0.7}, steps=1, batch_size=4)
    return MultiviewSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def painted(tiny_models, tmp_path_factory):
    """One dataset painted with pose + depth, 2 images per view, best of 2 candidates each."""
    root = tmp_path_factory.mktemp("painted")
    bundle = write_bundle(root / "bundle")
    settings = settings_for(tiny_models, per_view=2, candidates=2)
    progress = SilentProgress()
    dataset = generate_multiview(bundle, root / "out", settings, tiny_models.store.resolve, progress)
    return bundle, root / "out", settings, dataset, progress


def test_dataset_has_the_requested_count_and_size_and_loads_in_the_gan_trainer(painted, tiny_models):
    bundle, out, _, dataset, progress = painted
    assert len(dataset.items) == 6 and dataset.resolution == tiny_models.spec.image_size
    for item in dataset.items:
        with Image.open(out / item.file) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
        assert f"{item.view_class} view" in item.prompt and 0.0 <= item.pose_confidence <= 1.0
        assert item.candidate in (0, 1)
    conditions = json.loads((bundle / "conditions.json").read_text())
    labels = {view["id"]: view["label"] for view in conditions["views"]}
    assert all(item.label == pytest.approx(labels[item.view_id]) for item in dataset.items)
    assert [item.view_class for item in dataset.items] == ["front"] * 2 + ["side"] * 2 + ["back"] * 2
    assert "nose" in dataset.items[-1].negative_prompt
    assert read_dataset(out).items == dataset.items
    training_set = MultiviewImages(out, resolution=32)
    assert len(training_set) == 12 and tuple(training_set.load_image(0).shape) == (3, 32, 32)
    assert progress.reports[-1] == (1.0, "done")


def test_resume_paints_only_missing_images_and_never_touches_finished_ones(painted, tiny_models, tmp_path):
    bundle, out, settings, dataset, _ = painted
    copy = shutil.copytree(out, tmp_path / "out")
    removed = copy / dataset.items[3].file
    original = removed.read_bytes()
    removed.unlink()
    kept = {item.file: (copy / item.file).stat().st_mtime_ns for item in dataset.items if item.file != dataset.items[3].file}
    resumed = generate_multiview(bundle, copy, settings, tiny_models.store.resolve)
    assert resumed.items == dataset.items
    assert removed.read_bytes() == original, "the same seed paints the same image"
    assert {file: (copy / file).stat().st_mtime_ns for file in kept} == kept


def test_a_run_started_before_a_setting_existed_resumes_with_its_default(painted, tiny_models, tmp_path):
    """generation.json of an older version has no 'vae' or 'embeddings': the defaults are what it painted with."""
    bundle, out, settings, dataset, _ = painted
    copy = shutil.copytree(out, tmp_path / "out")
    record = json.loads((copy / "generation.json").read_text())
    for newer in ("vae", "embeddings"):
        del record["settings"][newer]
    (copy / "generation.json").write_text(json.dumps(record))
    (copy / dataset.items[0].file).unlink()
    assert generate_multiview(bundle, copy, settings, tiny_models.store.resolve).items == dataset.items


def test_resuming_with_different_settings_is_refused(painted, tiny_models, tmp_path):
    bundle, out, settings, _, _ = painted
    copy = shutil.copytree(out, tmp_path / "out")
    with pytest.raises(FormatError, match="differs from the run") as error:
        generate_multiview(bundle, copy, settings_for(tiny_models, per_view=2, candidates=2, steps=2), tiny_models.store.resolve)
    assert error.value.field == "steps"


def test_single_file_base_paints_a_single_control_dataset_through_the_cli(tiny_models, tmp_path, capsys):
    bundle = write_bundle(tmp_path / "bundle", yaws=(0.0,))
    data = tmp_path / "data"
    assert cli_main(["models", "add", str(tiny_models.paths.base_single_file), "--as", "sd", "--role", "base",
                     "--config", str(tiny_models.paths.base), "--data-dir", str(data)]) == 0
    assert cli_main(["models", "add", str(tiny_models.paths.controlnets["pose"]), "--as", "openpose",
                     "--role", "controlnet-pose", "--data-dir", str(data)]) == 0
    code = cli_main(["multiview", "--conditions", str(bundle), "--base", "sd", "--controlnet", "pose", "--style", "a robot head",
                     "--out", str(tmp_path / "out"), "--steps", "1", "--resolution", "16", "--data-dir", str(data)])
    assert code == 0, capsys.readouterr().err
    dataset = read_dataset(tmp_path / "out")
    assert len(dataset.items) == 1 and Image.open(tmp_path / "out" / dataset.items[0].file).size == (16, 16)


def test_shards_merge_into_the_same_dataset_as_one_run(tiny_models, tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    settings = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={}, steps=1)
    for index in range(2):
        assert generate_multiview(bundle, tmp_path / f"shard{index}", settings, tiny_models.store.resolve, shard=Shard(index, 2)) is None
    assert cli_main(["multiview-merge", str(tmp_path / "shard0"), str(tmp_path / "shard1")]) == 0
    merged = read_dataset(tmp_path / "shard0")
    single = generate_multiview(bundle, tmp_path / "single", settings, tiny_models.store.resolve)
    assert [(i.file, i.seed, i.prompt) for i in merged.items] == [(i.file, i.seed, i.prompt) for i in single.items]
    assert write_manifest(tmp_path / "shard0").items == merged.items
    other = replace(settings, seed=settings.seed + 1)
    generate_multiview(bundle, tmp_path / "other-run", other, tiny_models.store.resolve, shard=Shard(1, 2))
    assert cli_main(["multiview-merge", str(tmp_path / "shard0"), str(tmp_path / "other-run")]) == 2  # another run's shard


class CancelAfter(SilentProgress):
    def __init__(self, reports: int) -> None:
        super().__init__()
        self.limit = reports

    def update(self, fraction: float, stage: str) -> None:
        self.stop_requested = len(self.reports) >= self.limit
        super().update(fraction, stage)


def test_cancel_keeps_finished_images_whole_and_the_run_resumes(tiny_models, tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    settings = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={},
                            batch_size=1, resolution=16)
    with pytest.raises(Cancelled):
        generate_multiview(bundle, tmp_path / "out", settings, tiny_models.store.resolve, CancelAfter(4))
    finished = sorted(p.name for p in (tmp_path / "out" / "images").iterdir())
    assert 1 <= len(finished) < 3 and all(name.endswith(".png") and not name.startswith(".") for name in finished)
    assert len(generate_multiview(bundle, tmp_path / "out", settings, tiny_models.store.resolve).items) == 3


def test_a_missing_model_fails_before_anything_is_written(tiny_models, tmp_path):
    bundle = write_bundle(tmp_path / "bundle", yaws=(0.0,))
    with pytest.raises(ModelMissing, match="no model named 'sd-xl'"):
        generate_multiview(bundle, tmp_path / "out", settings_for(tiny_models, base="sd-xl"), tiny_models.store.resolve)
    assert not (tmp_path / "out").exists()


def test_a_controlnet_for_another_base_size_fails_before_anything_is_written(tiny_models, tmp_path):
    from backend.models.tiny import TinySpec, build_tiny_base, build_tiny_controlnet

    other_unet = build_tiny_base(TinySpec(cross_attention_dim=64), tiny_models.paths.base / "tokenizer")[0]
    build_tiny_controlnet(other_unet, seed=5).save_pretrained(tmp_path / "cn")
    store = tiny_models.store
    store.add(tmp_path / "cn", "wide-depth", "controlnet-depth", replace=True)
    bundle = write_bundle(tmp_path / "bundle", yaws=(0.0,))
    settings = settings_for(tiny_models, controlnets={"depth": "wide-depth"}, control_weights={})
    try:
        with pytest.raises(InvalidInput, match="does not fit the base model"):
            generate_multiview(bundle, tmp_path / "out", settings, store.resolve)
    finally:
        store.remove("wide-depth")
    assert not (tmp_path / "out").exists()


def test_a_bundle_without_pose_images_is_refused_before_anything_is_written(tiny_models, tmp_path):
    bundle = write_bundle(tmp_path / "bundle", drop_passes=("pose",))
    with pytest.raises(FormatError, match="no 'pose' pass") as error:
        generate_multiview(bundle, tmp_path / "out", settings_for(tiny_models), tiny_models.store.resolve)
    assert error.value.field == "renders[].passes.pose"
    assert not (tmp_path / "out").exists()


def test_a_bundle_with_zero_views_is_refused_before_anything_is_written(tiny_models, tmp_path):
    bundle = write_bundle(tmp_path / "bundle", yaws=(0.0,))
    manifest = json.loads((bundle / "conditions.json").read_text())
    manifest["views"], manifest["renders"] = [], []
    (bundle / "conditions.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match="no views"):
        generate_multiview(bundle, tmp_path / "out", settings_for(tiny_models), tiny_models.store.resolve)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, value", [("per_view", 0), ("candidates", 0), ("resolution", 30)])
def test_impossible_settings_name_the_field(tiny_models, tmp_path, field, value):
    with pytest.raises(FormatError) as error:
        generate_multiview(write_bundle(tmp_path / "bundle", yaws=(0.0,)), tmp_path / "out",
                           settings_for(tiny_models, **{field: value}), tiny_models.store.resolve)
    assert error.value.field == field and not (tmp_path / "out").exists()


def test_a_style_lora_from_the_store_changes_the_painted_images(tiny_models, tmp_path):
    bundle = write_bundle(tmp_path / "bundle", yaws=(0.0,))
    plain = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={})
    styled = settings_for(tiny_models, controlnets=plain.controlnets, control_weights={}, lora=tiny_models.names["lora"])
    without = generate_multiview(bundle, tmp_path / "plain", plain, tiny_models.store.resolve).items[0]
    with_lora = generate_multiview(bundle, tmp_path / "styled", styled, tiny_models.store.resolve).items[0]
    assert (without.file, without.seed, without.prompt) == (with_lora.file, with_lora.seed, with_lora.prompt)
    assert (tmp_path / "plain" / without.file).read_bytes() != (tmp_path / "styled" / with_lora.file).read_bytes()


def test_torchrun_ranks_paint_one_dataset_together(tiny_models, tmp_path):
    """Two CPU ranks under torchrun split the images; rank 0 writes the merged dataset.json."""
    bundle = write_bundle(tmp_path / "bundle")
    data = tmp_path / "data"
    register_tiny_models(ModelStore(data / "models"), tiny_models.paths)
    command = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
               "-m", "backend.cli", "multiview", "--conditions", str(bundle), "--base", "tiny-sd", "--controlnet", "pose=tiny-controlnet-pose",
               "--style", "a clay head", "--out", str(tmp_path / "out"), "--steps", "1", "--resolution", "16",
               "--device", "cpu", "--data-dir", str(data)]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert [item.view_id for item in read_dataset(tmp_path / "out").items] == ["v00", "v01", "v02"]


def test_a_bare_control_kind_picks_the_only_controlnet_of_that_role_and_refuses_to_guess(tiny_models, tiny_model_store):
    from backend.commands.multiview import parse_controls
    from backend.errors import InvalidInput, ModelMissing
    from backend.multiview.generation import choose_models

    store, base = tiny_models.store, tiny_models.names["base"]
    assert choose_models(store, base, parse_controls("depth")) == (base, {"depth": tiny_models.names["controlnet-depth"]})
    assert choose_models(store, base, parse_controls("pose=tiny-controlnet-pose"))[1] == {"pose": "tiny-controlnet-pose"}
    with pytest.raises(InvalidInput, match="several") as error:
        choose_models(store, base, parse_controls("pose,depth"))
    assert error.value.field == "controlnets.pose"
    with pytest.raises(InvalidInput, match="several models have role base"):
        choose_models(store, "", {"depth": ""})
    with pytest.raises(ModelMissing, match="no model with role base") as missing:
        choose_models(tiny_model_store, "", {"depth": ""})
    assert "models add" in missing.value.hint
    with pytest.raises(FormatError, match="not a control kind"):
        choose_models(store, "", {"sketch": ""})


def test_progress_stays_within_0_and_1_with_pndms_extra_warm_up_steps(tiny_models, tmp_path):
    """PNDM samples more timesteps than the requested steps; the reported progress must not pass 100 %."""
    bundle = write_bundle(tmp_path / "bundle", yaws=(0.0,))
    settings = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={},
                            scheduler="PNDMScheduler", steps=5, batch_size=1, resolution=16)
    progress = SilentProgress()
    generate_multiview(bundle, tmp_path / "out", settings, tiny_models.store.resolve, progress)
    fractions = [fraction for fraction, _ in progress.reports]
    assert all(0.0 <= fraction <= 1.0 for fraction in fractions)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_prompts_longer_than_clip_reads_are_reported_beside_the_dataset(tiny_models, tmp_path):
    """A style CLIP cannot read to its end (77 tokens) is named in notices.json, which the add-on shows
    under the job; prompts that fit leave no notice."""
    from blender_addon.formats.notices import read_notices

    bundle = write_bundle(tmp_path / "bundle", yaws=(0.0,))
    long_style = "a stylized cartoon character head " + " ".join(f"with detail number {i}" for i in range(40)) + " glowing freckles"
    common = dict(controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={}, resolution=16)
    generate_multiview(bundle, tmp_path / "long", settings_for(tiny_models, style=long_style, **common), tiny_models.store.resolve)
    (notice,) = read_notices(tmp_path / "long")
    assert notice.startswith("1 of 1 prompts are longer than the text encoder reads (77 tokens): words from '")
    ignored = notice.split("'")[1]
    assert long_style.index(ignored) > len("a stylized cartoon character head"), "names where the cut falls, inside the style"
    generate_multiview(bundle, tmp_path / "short", settings_for(tiny_models, style="a head", attributes_per_image=0, **common),
                       tiny_models.store.resolve)
    assert read_notices(tmp_path / "short") == []
