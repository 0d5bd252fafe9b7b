"""Cancelling, following and recovering jobs on the real backend.

Jobs are slowed with the test-only fault injection AVATAR_FOUNDRY_TEST_STEP_DELAY (a sleep in every
progress update of the worker), so a real echo-conditions job is still running when the test acts.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from blender_addon.formats import protocol
from backend.server.faults import STEP_DELAY_ENV
from tests.fixtures.server import start_backend, submit_bundle_job, wait_for_job, write_condition_bundle, zip_folder

SLOW = {STEP_DELAY_ENV: "0.3"}
RENDERS = 4  # 5 progress updates: about 1.5 s per job with the delay


@pytest.fixture(scope="module")
def slow_backend(tmp_path_factory):
    running = start_backend(tmp_path_factory.mktemp("slow-data"), env=SLOW)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> bytes:
    return zip_folder(write_condition_bundle(tmp_path_factory.mktemp("bundle"), views=RENDERS, size=16))


def _submit(client, bundle_zip) -> str:
    response = submit_bundle_job(client, bundle_zip, {"thumbnail_size": 16})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _running_with_progress(job: dict) -> bool:
    return job["progress"] > 0


def test_cancel_stops_a_running_job_at_its_next_step_and_keeps_partial_files(slow_backend, bundle_zip):
    with slow_backend.client() as client:
        job_id = _submit(client, bundle_zip)
        running = wait_for_job(client, job_id, ("running",), condition=_running_with_progress)
        assert 0 < running["progress"] < 1 and running["stage"].startswith("render")
        client.post(f"/v1/jobs/{job_id}/cancel")
        cancelled = wait_for_job(client, job_id)
        assert cancelled["state"] == "cancelled"
        assert cancelled["error"]["code"] == protocol.CANCELLED
        assert cancelled["progress"] < 1
        names = [a["name"] for a in client.get(f"/v1/jobs/{job_id}/artifacts").json()["artifacts"]]
        assert "contact_sheet.png" not in names
        assert any(name.startswith("rows/") for name in names)


def test_cancel_of_a_queued_job_takes_effect_at_once_and_the_queue_moves_on(slow_backend, bundle_zip):
    with slow_backend.client() as client:
        first = _submit(client, bundle_zip)
        second = _submit(client, bundle_zip)
        third = _submit(client, bundle_zip)
        assert client.post(f"/v1/jobs/{second}/cancel").json()["state"] == "cancelled"
        client.post(f"/v1/jobs/{first}/cancel")
        assert wait_for_job(client, third)["state"] == "succeeded"
        assert client.get(f"/v1/jobs/{second}").json()["started_at"] is None


def test_event_stream_delivers_progress_until_the_job_ends(slow_backend, bundle_zip):
    with slow_backend.client() as client:
        job_id = _submit(client, bundle_zip)
        events = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[len("data: "):]))
    assert events[-1]["state"] == "succeeded" and events[-1]["progress"] == 1.0
    running = [event for event in events if event["state"] == "running"]
    assert len({event["stage"] for event in running}) >= 3
    progress = [event["progress"] for event in events]
    assert progress == sorted(progress)
    assert any(event["eta_seconds"] is not None and event["eta_seconds"] >= 0 for event in running)  # an ETA while it runs


def test_after_a_crash_or_a_stop_the_running_job_reads_interrupted_and_queued_jobs_run(tmp_path, bundle_zip):
    data_dir = tmp_path / "data"
    crashed = start_backend(data_dir, env=SLOW)
    with crashed.client() as client:
        interrupted_id = _submit(client, bundle_zip)
        queued_id = _submit(client, bundle_zip)
        wait_for_job(client, interrupted_id, ("running",), condition=_running_with_progress)
    crashed.kill()
    partial_rows = sorted((data_dir / "jobs" / interrupted_id / "output" / "rows").iterdir())
    assert partial_rows

    restarted = start_backend(data_dir, env=SLOW)
    with restarted.client() as client:
        interrupted = client.get(f"/v1/jobs/{interrupted_id}").json()
        assert interrupted["state"] == "failed"
        assert interrupted["error"]["code"] == protocol.INTERRUPTED
        assert "interrupted" in interrupted["error"]["message"]
        assert wait_for_job(client, queued_id)["state"] == "succeeded"
        running_at_stop = _submit(client, bundle_zip)
        wait_for_job(client, running_at_stop, ("running",), condition=_running_with_progress)
    assert sorted((data_dir / "jobs" / interrupted_id / "output" / "rows").iterdir()) == partial_rows
    assert restarted.token == crashed.token

    assert restarted.stop() == 0
    with closing(sqlite3.connect(data_dir / "jobs.sqlite3")) as database:
        state, error = database.execute("SELECT state, error FROM jobs WHERE id = ?", (running_at_stop,)).fetchone()
    assert state == "failed" and json.loads(error)["code"] == protocol.INTERRUPTED
    assert not (data_dir / protocol.SERVER_INFO_FILE_NAME).exists()


def test_a_second_backend_on_the_same_data_dir_refuses_to_start(slow_backend):
    with pytest.raises(RuntimeError, match="another backend is already running"):
        start_backend(slow_backend.data_dir)


def test_a_running_job_cannot_be_deleted_but_a_finished_one_is_removed_with_its_folder(slow_backend, bundle_zip):
    with slow_backend.client() as client:
        job_id = _submit(client, bundle_zip)
        wait_for_job(client, job_id, ("running",))
        refused = client.delete(f"/v1/jobs/{job_id}")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == protocol.CONFLICT
        client.post(f"/v1/jobs/{job_id}/cancel")
        wait_for_job(client, job_id)
        assert client.delete(f"/v1/jobs/{job_id}").json() == {"deleted": job_id}
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert not (slow_backend.data_dir / "jobs" / job_id).exists()
