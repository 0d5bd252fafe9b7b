"""Issue 23 item 11 / issue 17 item 6: a job's memory and time are estimated before it starts; what
cannot fit the machine is refused naming the param and a value or preset that fits, the default
presets fit, and an allocation failure ends the job as OUT_OF_MEMORY, never the backend."""

from __future__ import annotations

import time

import pytest
import torch
from pydantic import Field

from backend.data_dir import DataDir
from backend.device import pick_device
from backend.errors import InvalidInput
from backend.job_estimates import (CPU_FLOPS, GPU_FLOPS, MAX_JOB_SECONDS, Machine, check_job_fits, estimate_job,
                                   fit_unset_params, this_machine)
from backend.jobs import registry
from backend.jobs.registry import JobParams, get_kind, job_kind
from backend.model_cache import ModelCache
from backend.server.error_mapping import to_foundry_error
from backend.server.job_store import JobStore
from backend.server.references import ReferenceResolver
from backend.server.worker import JobWorker
from blender_addon.formats import protocol
from tests.fixtures.server import start_backend

GIB = 1 << 30
LAPTOP = Machine("cpu", 8 * GIB, CPU_FLOPS)
WORKSTATION_GPU = Machine("cuda", 22 * GIB, GPU_FLOPS)


def _params(kind: str, **params):
    return get_kind(kind).params.model_validate(params)


def _refusal(kind: str, params, machine: Machine) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        check_job_fits(kind, params, machine)
    return refused.value


def test_a_batch_too_large_for_the_memory_is_refused_naming_the_largest_batch_that_fits():
    params = _params("train-eg3d", dataset="job:0123456789abcdef", config="small", batch_size=64)
    refusal = _refusal("train-eg3d", params, LAPTOP)
    assert refusal.field == "params.batch_size" and "of memory (RAM)" in refusal.message
    largest = int(refusal.hint.split("set batch_size to ")[1].split()[0])
    small_enough = params.model_copy(update={"batch_size": largest, "total_images": 1000})
    assert check_job_fits("train-eg3d", small_enough, LAPTOP) is not None
    with pytest.raises(InvalidInput):
        check_job_fits("train-eg3d", small_enough.model_copy(update={"batch_size": largest + 1}), LAPTOP)


def test_a_preset_that_cannot_fit_at_any_batch_names_a_smaller_preset():
    params = _params("train-eg3d", dataset="job:0123456789abcdef", config="full", batch_size=1)
    tiny_machine = Machine("cpu", 3 * GIB, CPU_FLOPS)
    refusal = _refusal("train-eg3d", params, tiny_machine)
    assert refusal.field == "params.config" and "'tiny' preset" in refusal.hint


def test_a_run_of_months_is_refused_naming_a_length_that_fits():
    params = _params("train-deferred", steps=10_000_000, batch_size=8, resolution=512)
    large_gpu = Machine("cuda", 44 * GIB, GPU_FLOPS)
    refusal = _refusal("train-deferred", params, large_gpu)
    assert refusal.field == "params.steps" and "days on this machine" in refusal.message
    steps = int(refusal.hint.split("set steps to ")[1].split()[0])
    assert estimate_job("train-deferred", params.model_copy(update={"steps": steps}), large_gpu).seconds <= MAX_JOB_SECONDS


@pytest.mark.parametrize("machine", [LAPTOP, Machine("cpu", 3 * GIB, CPU_FLOPS), WORKSTATION_GPU, this_machine(pick_device("cpu"))])
def test_the_default_gan_preset_fits_the_machine_it_runs_on(machine):
    """The panel's default (the small preset, sizes left to the backend) is fitted, not refused."""
    params = _params("train-eg3d", dataset="job:0123456789abcdef")
    fitted = fit_unset_params("train-eg3d", params, machine)
    assert check_job_fits("train-eg3d", fitted, machine) is not None
    assert 1 <= fitted.batch_size <= 16 and fitted.total_images >= 1


def test_every_kinds_maximum_params_are_refused_on_this_machine():
    """Issue 23 item 11: every param at its maximum was accepted (and the OS killed the server)."""
    machine = this_machine(pick_device("cpu"))
    maxima = {
        "train-eg3d": dict(dataset="job:0123456789abcdef", config="full", batch_size=4096, total_images=10**9),
        "train-deferred": dict(batch_size=256, resolution=2048, steps=10_000_000, triplane_resolution=4096, triplane_channels=128),
        "multiview": dict(style="a head", batch_size=64, resolution=2048, per_view=1000, candidates=16, steps=200),
        "generate-avatar": dict(checkpoint="job:0123456789abcdef", mesh_resolution=1024, texture_size=8192),
        "animate": dict(checkpoint="job:0123456789abcdef", batch_size=64),
    }
    for kind, params in maxima.items():
        refusal = _refusal(kind, _params(kind, **params), machine)
        assert refusal.field.startswith("params.") and refusal.hint, kind


def test_a_cpu_allocation_failure_is_out_of_memory_not_internal():
    with pytest.raises(RuntimeError) as failure:
        torch.empty(2**50, dtype=torch.uint8)
    assert to_foundry_error(failure.value).code == protocol.OUT_OF_MEMORY


def test_the_server_refuses_what_cannot_fit_and_estimates_for_the_panel(tmp_path):
    """POST /v1/jobs refuses a job that cannot fit (422 naming the param, nothing stored); POST
    /v1/jobs/estimate gives memory, time, the verdict and the params the job would run with."""
    backend = start_backend(tmp_path / "data")
    try:
        with backend.client() as client:
            huge = {"kind": "train-eg3d", "params": {"dataset": "job:0123456789abcdef", "config": "full", "batch_size": 4096}}
            refused = client.post("/v1/jobs", json=huge)
            assert refused.status_code == 422 and refused.json()["error"]["field"] == "params.batch_size"
            assert client.get("/v1/jobs").json()["jobs"] == []
            answer = client.post("/v1/jobs/estimate", json=huge).json()
            assert answer["fits"] is False and answer["problem"]["field"] == "params.batch_size"
            assert answer["memory_bytes"] > answer["memory_limit_bytes"] > 0
            default = client.post("/v1/jobs/estimate", json={"kind": "train-eg3d", "params": {"dataset": "job:0123456789abcdef"}})
            figures = default.json()
            assert figures["fits"] is True and figures["problem"] is None and figures["seconds"] > 0
            assert 1 <= figures["params"]["batch_size"] <= 16
    finally:
        backend.stop()


class _AllocationParams(JobParams):
    bytes: int = Field(1, ge=1, le=2**62)


@pytest.fixture
def allocating_kind():
    """A job kind (registered for this test only) that allocates a tensor of ``bytes`` bytes."""
    @job_kind("test-allocate", _AllocationParams, "test only: allocate a tensor of the given size")
    def allocate(params: _AllocationParams, context) -> None:
        torch.empty(params.bytes, dtype=torch.uint8).fill_(1)

    yield
    registry._KINDS.pop("test-allocate")


def test_a_job_that_runs_out_of_memory_fails_as_such_and_the_next_job_runs(tmp_path, allocating_kind):
    """An allocation the machine cannot make ends that job (OUT_OF_MEMORY with the advice to lower
    sizes), not the worker: the job queued after it succeeds."""
    data_dir = DataDir.at(tmp_path / "data")
    data_dir.create()
    store = JobStore(data_dir.database_path)
    store.add("0000000000000001", "test-allocate", {"bytes": 2**50}, has_inputs=False)
    store.add("0000000000000002", "test-allocate", {"bytes": 1024}, has_inputs=False)
    worker = JobWorker(store, data_dir, ModelCache(idle_seconds=None), "cpu", ReferenceResolver(data_dir, store))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not store.get("0000000000000002").finished:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        worker.stop()
        store.close()
    failed, succeeded = store_jobs = [JobStore(data_dir.database_path).get(job_id) for job_id in ("0000000000000001", "0000000000000002")]
    assert failed.state == "failed" and failed.error["code"] == protocol.OUT_OF_MEMORY and failed.error["hint"]
    assert succeeded.state == "succeeded", store_jobs


def test_animating_through_the_small_embedded_renderer_is_not_estimated_as_stable_diffusion():
    """The embedded default renderer is a few MB with no base model: estimated as a Stable Diffusion UNet, a
    laptop without several GB free would be refused an animation that needs a few hundred MB."""
    from backend.job_estimates import estimate_animate
    from backend.memory_plan import GIB

    machine = Machine("cpu", 4 * GIB, CPU_FLOPS)
    embedded = estimate_animate(_params("animate"), machine, renders=24)
    on_stable_diffusion = estimate_animate(_params("animate", checkpoint="job:0123456789abcdef"), machine, renders=24,
                                           resolver=lambda reference: "/nonexistent")
    assert embedded.peak_bytes < 2 * GIB < 4 * GIB < on_stable_diffusion.peak_bytes
    assert embedded.to_json(machine)["fits"] and not on_stable_diffusion.to_json(machine)["fits"]
