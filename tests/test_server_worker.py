"""The job worker, job store, references and error mapping, in-process with a real SQLite store."""

from __future__ import annotations

import errno
import time

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.numpy import save_file

from backend.data_dir import DataDir
from backend.errors import InvalidInput, ModelMissing
from backend.jobs.echo_conditions import EchoConditionsParams
from backend.model_cache import ModelCache
from backend.models.store import ModelStore
from backend.server.error_mapping import to_foundry_error
from backend.server.job_store import JobStore
from backend.server.references import ReferenceResolver
from backend.server.worker import JobProgress, JobWorker
from blender_addon.formats import protocol
from blender_addon.formats.errors import FormatError
from tests.fixtures.server import write_condition_bundle


@pytest.fixture
def data_dir(tmp_path) -> DataDir:
    folder = DataDir.at(tmp_path / "data")
    folder.create()
    return folder


@pytest.fixture
def store(data_dir):
    jobs = JobStore(data_dir.database_path)
    yield jobs
    jobs.close()


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _queue_echo_job(data_dir: DataDir, store: JobStore, job_id: str, views: int = 2) -> None:
    write_condition_bundle(data_dir.inputs_dir(job_id), views=views, size=8)
    store.add(job_id, "echo-conditions", {"thumbnail_size": 16}, has_inputs=True)


def test_a_burst_of_progress_updates_is_written_sparingly_but_the_final_state_is_exact(store):
    store.add("burst", "echo-conditions", {}, has_inputs=False)
    store.claim("burst")
    progress = JobProgress("burst", store, should_stop=lambda: None)
    before = store.change_count
    for step in range(1000):
        progress.update(step / 1000, f"step {step}")
    writes = store.change_count - before
    assert 1 <= writes < 100
    store.finish("burst", "succeeded", "done", progress=1.0)
    job = store.get("burst")
    assert job.progress == 1.0 and job.state == "succeeded" and job.eta_seconds is None


def test_a_non_finite_progress_report_keeps_the_last_finite_value_so_the_store_stays_strict_json(store):
    store.add("nan", "echo-conditions", {}, has_inputs=False)
    store.claim("nan")
    progress = JobProgress("nan", store, should_stop=lambda: None, min_interval=0.0)
    progress.update(0.25, "a quarter")
    progress.update(float("nan"), "a broken estimate")
    progress.update(float("inf"), "another")
    assert store.get("nan").progress == 0.25 and progress.fraction == 0.25


def test_the_store_refuses_to_write_nan_or_infinity_into_a_job_record(store):
    with pytest.raises(ValueError):
        store.add("bad", "generate-avatar", {"mesh_level": float("inf")}, has_inputs=False)
    assert store.get("bad") is None


def test_jobs_run_in_submission_order_and_outputs_land_in_their_folders(data_dir, store):
    for job_id in ("first", "second", "third"):
        _queue_echo_job(data_dir, store, job_id)
    worker = JobWorker(store, data_dir, ModelCache(idle_seconds=None), "cpu", ReferenceResolver(data_dir, store))
    worker.start()
    try:
        _wait_until(lambda: all(store.get(i).finished for i in ("first", "second", "third")))
    finally:
        worker.stop()
    jobs = [store.get(i) for i in ("first", "second", "third")]
    assert [job.state for job in jobs] == ["succeeded"] * 3
    assert jobs[0].finished_at <= jobs[1].started_at and jobs[1].finished_at <= jobs[2].started_at
    assert (data_dir.output_dir("second") / "contact_sheet.png").is_file()


def test_a_job_whose_bundle_turns_out_corrupt_fails_with_invalid_input_naming_the_pass(data_dir, store):
    write_condition_bundle(data_dir.inputs_dir("broken"), views=1, size=8)
    (data_dir.inputs_dir("broken") / "renders/v00/f00000/pose.png").write_bytes(b"not a png")
    store.add("broken", "echo-conditions", {}, has_inputs=True)
    worker = JobWorker(store, data_dir, ModelCache(idle_seconds=None), "cpu", ReferenceResolver(data_dir, store))
    worker.start()
    try:
        _wait_until(lambda: store.get("broken").finished)
    finally:
        worker.stop()
    job = store.get("broken")
    assert job.state == "failed"
    assert job.error["code"] == protocol.INVALID_INPUT and job.error["field"] == "renders[0].passes.pose"


def test_models_are_unloaded_after_the_idle_time(data_dir, store):
    models = ModelCache(idle_seconds=0.05)
    models.get(("style-prior", "tiny"), lambda: torch.zeros(4))
    worker = JobWorker(store, data_dir, models, "cpu", ReferenceResolver(data_dir, store), idle_check_seconds=0.05)
    worker.start()
    try:
        _wait_until(lambda: not models.keys())
    finally:
        worker.stop()


def test_the_idle_time_counts_from_the_end_of_the_last_job_not_its_start():
    now = [0.0]
    models = ModelCache(idle_seconds=60.0, clock=lambda: now[0])
    models.get(("eg3d-generator", "run"), lambda: torch.zeros(4))  # a job starts and loads its model
    now[0] = 600.0
    models.touch()  # ... and ends ten minutes later
    now[0] = 630.0
    assert not models.clear_if_idle() and models.keys()
    now[0] = 661.0
    assert models.clear_if_idle() and not models.keys()


def test_job_references_resolve_only_to_succeeded_jobs(data_dir, store):
    resolve = ReferenceResolver(data_dir, store)
    store.add("done", "echo-conditions", {}, has_inputs=False)
    store.claim("done")
    store.finish("done", "succeeded", "done", progress=1.0)
    store.add("waiting", "echo-conditions", {}, has_inputs=False)
    assert resolve("job:done") == data_dir.output_dir("done")
    with pytest.raises(InvalidInput, match="queued"):
        resolve("job:waiting")
    with pytest.raises(ModelMissing):
        resolve("job:never-existed")


def test_model_names_resolve_through_the_model_store(data_dir, store, tmp_path):
    lora = tmp_path / "style.safetensors"
    save_file({"lora_down.weight": np.zeros((2, 2), np.float32)}, str(lora))
    ModelStore(data_dir.models_dir).add(lora, name="toon-style", role="lora")
    resolve = ReferenceResolver(data_dir, store)
    assert resolve("toon-style") == lora.resolve()
    with pytest.raises(ModelMissing, match="toon-style"):
        resolve("not-registered")


def test_errors_map_to_stable_codes_and_hints():
    assert to_foundry_error(torch.OutOfMemoryError("CUDA out of memory")).code == protocol.OUT_OF_MEMORY
    assert to_foundry_error(OSError(errno.ENOSPC, "No space left on device")).code == protocol.DISK_FULL
    format_error = to_foundry_error(FormatError("views[2].label", "needs 25 numbers"))
    assert (format_error.code, format_error.field, format_error.http_status) == (protocol.INVALID_INPUT, "views[2].label", 422)
    with pytest.raises(ValidationError) as invalid:
        EchoConditionsParams.model_validate({"thumbnail_size": "big"})
    assert to_foundry_error(invalid.value, "params").field == "params.thumbnail_size"
    internal = to_foundry_error(KeyError("secret internals"))
    assert internal.code == protocol.INTERNAL and internal.http_status == 500
    assert "secret internals" not in internal.message and internal.hint


def test_the_token_is_created_once_private_and_reused(data_dir):
    token = data_dir.ensure_token()
    assert len(token) >= 32 and data_dir.token_path.stat().st_mode & 0o777 == 0o600
    data_dir.token_path.chmod(0o644)
    assert data_dir.ensure_token() == token
    assert data_dir.token_path.stat().st_mode & 0o777 == 0o600
