"""On artists' GPUs: bf16 only where it is native, and small-VRAM measures chosen from free memory
(overridable), with a batch that runs out of memory halved instead of failing the run."""

from __future__ import annotations

import pytest

from backend.memory_plan import (GIB, MemoryPlan, batch_size_after_out_of_memory, choose_dtype_name, free_bytes_before_models,
                                 plan_memory)

SD15_BYTES = int(2.2 * GIB)  # UNet + VAE + text encoder + one ControlNet in fp16


@pytest.mark.parametrize("device_type, native, expected", [
    ("cuda", True, "bf16"), ("cuda", False, "fp16"), ("cpu", False, "fp32"), ("mps", False, "fp32")])
def test_bf16_only_where_the_gpu_computes_it_natively(device_type, native, expected):
    assert choose_dtype_name(device_type, native) == expected


def test_a_large_gpu_keeps_everything_on_it():
    assert plan_memory("auto", 80 * GIB, SD15_BYTES, 512, 8) == MemoryPlan()


def test_a_mid_size_gpu_decodes_one_image_at_a_time():
    plan = plan_memory("auto", 6 * GIB, SD15_BYTES, 512, 8)
    assert plan.vae_slicing and not plan.cpu_offload


def test_a_small_gpu_offloads_models_to_the_cpu_and_tiles_the_vae():
    assert plan_memory("auto", 2 * GIB, SD15_BYTES, 512, 4) == MemoryPlan(cpu_offload=True, vae_slicing=True, vae_tiling=True)


def test_a_larger_resolution_needs_more_measures_on_the_same_gpu():
    small = plan_memory("auto", 8 * GIB, SD15_BYTES, 512, 2)
    large = plan_memory("auto", 8 * GIB, SD15_BYTES, 1024, 2)
    assert small == MemoryPlan() and large.vae_slicing


def test_the_mode_overrides_the_automatic_choice_and_no_gpu_means_no_measures():
    assert plan_memory("full", 1 * GIB, SD15_BYTES, 512, 8) == MemoryPlan()
    assert plan_memory("low", 80 * GIB, SD15_BYTES, 512, 8) == MemoryPlan(True, True, True)
    assert plan_memory("auto", None, SD15_BYTES, 512, 8) == MemoryPlan()
    with pytest.raises(ValueError, match="memory mode"):
        plan_memory("tiny", None, SD15_BYTES, 512, 8)


def test_a_batch_that_runs_out_of_memory_is_halved_down_to_one():
    assert [batch_size_after_out_of_memory(size) for size in (8, 5, 2, 1)] == [4, 2, 1, None]


def test_painting_continues_with_smaller_batches_after_running_out_of_memory(tiny_models, tmp_path, monkeypatch):
    """Fault injection: the painter raises torch's OutOfMemoryError for batches of more than one image."""
    import torch

    from backend.multiview.generation import generate_multiview
    from backend.multiview.painter import Painter
    from tests.test_multiview_generation import settings_for, write_bundle

    real_paint, sizes = Painter.paint, []

    def paint_within_one_image_of_memory(self, images, *args, **kwargs):
        sizes.append(len(images))
        if len(images) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_paint(self, images, *args, **kwargs)

    monkeypatch.setattr(Painter, "paint", paint_within_one_image_of_memory)
    settings = settings_for(tiny_models, controlnets={"pose": tiny_models.names["controlnet-pose"]}, control_weights={},
                            batch_size=4, resolution=16)
    dataset = generate_multiview(write_bundle(tmp_path / "bundle"), tmp_path / "out", settings, tiny_models.store.resolve)
    assert len(dataset.items) == 3 and sizes == [3, 2, 1, 1, 1]  # 4 -> 2 -> 1, then the three images one by one


def test_models_already_on_the_gpu_are_not_counted_twice():
    """An 8 GB card with 2.2 GB of models that read 5.8 GB free after loading them plans as with 8 GB free:
    no CPU offload for one image (it used to plan with 5.8 GB free minus the models again)."""
    free_after_loading = 8 * GIB - SD15_BYTES
    free = free_bytes_before_models(free_after_loading, SD15_BYTES)
    assert free == 8 * GIB
    assert plan_memory("auto", free, SD15_BYTES, 512, 1) == MemoryPlan()
    assert free_bytes_before_models(None, SD15_BYTES) is None  # no GPU


@pytest.mark.parametrize("card_gib, offload", [(4, True), (6, False), (8, False)])
def test_what_cards_of_4_6_and_8_gb_get_for_one_sd15_image(card_gib, offload):
    """Free memory is read before the models are on the card (about 0.4 GB goes to the desktop and CUDA context)."""
    plan = plan_memory("auto", int((card_gib - 0.4) * GIB), SD15_BYTES, 512, 1)
    assert plan.cpu_offload is offload and plan.weights_on_device is not offload

