"""Issue 23 items 1-4: the real backend meets a damaged, lost or locked job database.

Damage is injected into the real files (a 0-byte or truncated file, garbage, a folder in its
place, another program's database, a bad page, deleted -wal/-shm followed by kill -9, a row whose
params JSON is cut short), the lock is held by a second process, and every case is judged by what
a user sees: the backend starts, says what it did in one line, and lists the jobs with their files.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from blender_addon.formats import protocol
from tests.fixtures.server import start_backend, submit_bundle_job, wait_for_job, write_condition_bundle, zip_folder

STEP_DELAY = {"AVATAR_FOUNDRY_TEST_STEP_DELAY": "0.3"}


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> bytes:
    return zip_folder(write_condition_bundle(tmp_path_factory.mktemp("bundle"), views=2, size=16))


@pytest.fixture(scope="module")
def finished_data_dir(tmp_path_factory, bundle_zip) -> tuple[Path, list[str]]:
    """A data dir whose backend ran two echo jobs to success, then stopped."""
    data_dir = tmp_path_factory.mktemp("finished") / "data"
    backend = start_backend(data_dir)
    try:
        with backend.client() as client:
            ids = [submit_bundle_job(client, bundle_zip).json()["id"] for _ in range(2)]
            for job_id in ids:
                assert wait_for_job(client, job_id)["state"] == "succeeded"
    finally:
        backend.stop()
    return data_dir, ids


def _copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("server-*.log"))
    return target


def _assert_jobs_listed_with_their_files(backend, ids: list[str]) -> None:
    with backend.client() as client:
        listed = {job["id"]: job for job in client.get("/v1/jobs").json()["jobs"]}
        for job_id in ids:
            assert listed[job_id]["state"] == "succeeded" and listed[job_id]["kind"] == "echo-conditions"
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["params"]["thumbnail_size"] > 0
            names = [artifact["name"] for artifact in client.get(f"/v1/jobs/{job_id}/artifacts").json()["artifacts"]]
            assert "summary.json" in names
            assert client.get(f"/v1/jobs/{job_id}/artifacts/summary.json").status_code == 200


def _write_other_programs_database(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE photos (name TEXT, taken TEXT)")
    connection.execute("INSERT INTO photos VALUES ('beach.jpg', '2024-07-01')")
    connection.commit()
    connection.close()


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "zero-bytes":
        path.write_bytes(b"")
    elif how == "truncated-100":
        path.write_bytes(data[:100])
    elif how == "truncated-half":
        path.write_bytes(data[:len(data) // 2])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 64)
    elif how == "folder":
        path.unlink()
        path.mkdir()
        (path / "something").write_text("not a database")
    elif how == "other-program":
        path.unlink()
        _write_other_programs_database(path)
    elif how == "bad-page":
        page_size = int.from_bytes(data[16:18], "big")
        damaged = bytearray(data)
        damaged[page_size:2 * page_size] = bytes([0xA5]) * page_size
        path.write_bytes(bytes(damaged))
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["zero-bytes", "truncated-100", "truncated-half", "garbage", "folder", "other-program", "bad-page"])
def test_a_damaged_job_database_is_set_aside_and_the_jobs_come_back_from_their_folders(finished_data_dir, tmp_path, how):
    """Item 1: whatever happened to jobs.sqlite3, the backend starts, lists every finished job with
    its params and downloadable files, and (for a damaged file) says so in one line naming the
    file it set aside; another program's database is moved aside unmodified."""
    data_dir = _copy(finished_data_dir[0], tmp_path)
    database = data_dir / "jobs.sqlite3"
    _damage(database, how)
    original = database.read_bytes() if database.is_file() else None
    backend = start_backend(data_dir)
    try:
        _assert_jobs_listed_with_their_files(backend, finished_data_dir[1])
        log = backend.log()
        aside = sorted(data_dir.glob("jobs.sqlite3.damaged-*"))
        if how == "zero-bytes":
            assert "restored 2 job record(s)" in log and not aside
        else:
            lines = [line for line in log.splitlines() if "was damaged" in line]
            assert len(lines) == 1 and "rebuilt 2 job record(s) from the job folders" in lines[0]
            assert len(aside) == 1 and aside[0].name in lines[0]
            if original is not None:
                assert aside[0].read_bytes() == original
        assert "Traceback" not in log
    finally:
        backend.stop()


def test_queued_jobs_keep_their_uploads_and_run_after_the_database_is_emptied(tmp_path, bundle_zip):
    """Item 1: a 0-byte database no longer deletes the uploaded inputs of queued jobs: they come
    back queued and run to success after the restart."""
    data_dir = tmp_path / "data"
    backend = start_backend(data_dir, env=STEP_DELAY)
    with backend.client() as client:
        first = submit_bundle_job(client, bundle_zip).json()["id"]
        queued = submit_bundle_job(client, bundle_zip).json()["id"]
        wait_for_job(client, first, states=("running",))
    backend.kill()
    (data_dir / "jobs.sqlite3").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (data_dir / f"jobs.sqlite3{suffix}").unlink(missing_ok=True)
    backend = start_backend(data_dir)
    try:
        with backend.client() as client:
            assert wait_for_job(client, queued)["state"] == "succeeded"
            interrupted = client.get(f"/v1/jobs/{first}").json()
            assert interrupted["state"] == "failed" and interrupted["error"]["code"] == protocol.INTERRUPTED
    finally:
        backend.stop()


def test_deleted_wal_and_shm_then_kill_9_loses_no_finished_job(tmp_path, bundle_zip):
    """Item 4: -wal and -shm deleted under a running server, then kill -9: every job finished
    before and after the deletion is listed after the restart, its files downloadable."""
    data_dir = tmp_path / "data"
    backend = start_backend(data_dir)
    ids = []
    with backend.client() as client:
        ids.append(submit_bundle_job(client, bundle_zip).json()["id"])
        wait_for_job(client, ids[0])
        for suffix in ("-wal", "-shm"):
            (data_dir / f"jobs.sqlite3{suffix}").unlink(missing_ok=True)
        for _ in range(3):
            ids.append(submit_bundle_job(client, bundle_zip).json()["id"])
            wait_for_job(client, ids[-1])
    backend.kill()
    backend = start_backend(data_dir)
    try:
        _assert_jobs_listed_with_their_files(backend, ids)
    finally:
        backend.stop()


def test_a_row_with_damaged_params_is_failed_with_the_reason_and_the_queue_keeps_running(tmp_path, bundle_zip):
    """Item 2: a queued row whose params JSON is cut short neither hides the other jobs from the
    list nor stops the worker: it is listed failed with the reason, and a new job runs."""
    data_dir = tmp_path / "data"
    backend = start_backend(data_dir)
    with backend.client() as client:
        good = submit_bundle_job(client, bundle_zip).json()["id"]
        wait_for_job(client, good)
    backend.stop()
    connection = sqlite3.connect(data_dir / "jobs.sqlite3")
    connection.execute("INSERT INTO jobs (id, kind, state, params, has_inputs, created_at) "
                       "VALUES ('00000000deadbeef', 'echo-conditions', 'queued', '{\"thumbnail_size\": 1', 0, '2026-01-01T00:00:00Z')")
    connection.commit()
    connection.close()
    backend = start_backend(data_dir)
    try:
        with backend.client() as client:
            new = submit_bundle_job(client, bundle_zip).json()["id"]
            assert wait_for_job(client, new)["state"] == "succeeded"
            listed = {job["id"]: job for job in client.get("/v1/jobs").json()["jobs"]}
            assert listed[good]["state"] == "succeeded"
            damaged = listed["00000000deadbeef"]
            assert damaged["state"] == "failed" and "record was damaged" in damaged["error"]["message"]
            assert "params are not valid JSON" in damaged["error"]["message"]
        assert backend.log().count("00000000deadbeef in the job database is damaged") == 1
    finally:
        backend.stop()


LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


def _hold_write_lock(database: Path) -> subprocess.Popen:
    """A second process holding SQLite's write lock on ``database`` until its stdin closes."""
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    holder.wait(30)


def test_a_database_locked_by_another_program_gives_503_while_health_answers_and_the_running_job_keeps_its_result(
        tmp_path, bundle_zip):
    """Item 3: while another process holds the write lock, health and reads answer, a submission
    is refused 503 BUSY saying the database is locked by another program, and the job that was
    running records its success once the lock is gone."""
    data_dir = tmp_path / "data"
    backend = start_backend(data_dir, env=STEP_DELAY)
    try:
        with backend.client() as client:
            running = submit_bundle_job(client, bundle_zip).json()["id"]
            wait_for_job(client, running, states=("running",))
            holder = _hold_write_lock(data_dir / "jobs.sqlite3")
            try:
                assert client.get("/v1/health").json()["status"] == "ok"
                assert client.get(f"/v1/jobs/{running}").json()["state"] == "running"
                refused = submit_bundle_job(client, bundle_zip)
                assert refused.status_code == 503
                error = refused.json()["error"]
                assert error["code"] == protocol.BUSY and "locked by another program" in error["message"]
                assert client.get("/v1/health").status_code == 200
            finally:
                _release(holder)
            assert wait_for_job(client, running)["state"] == "succeeded"
            names = [artifact["name"] for artifact in client.get(f"/v1/jobs/{running}/artifacts").json()["artifacts"]]
            assert "summary.json" in names
    finally:
        backend.stop()


def test_a_database_locked_at_start_is_waited_for_and_named_in_the_log(tmp_path):
    """Item 3: a lock held when the backend starts gives a line naming the locked file (no
    traceback); the backend starts once the lock is gone."""
    data_dir = tmp_path / "data"
    start_backend(data_dir).stop()
    holder = _hold_write_lock(data_dir / "jobs.sqlite3")

    def release_once_waiting() -> None:
        for _ in range(600):
            logs = [path.read_text(errors="replace") for path in data_dir.glob("server-*.log")]
            if any("is locked by another program; waiting" in log for log in logs):
                break
            time.sleep(0.1)
        _release(holder)

    releaser = threading.Thread(target=release_once_waiting)
    releaser.start()
    backend = start_backend(data_dir)
    releaser.join()
    try:
        assert f"the job database {data_dir.resolve() / 'jobs.sqlite3'} is locked by another program" in backend.log()
        assert "Traceback" not in backend.log()
    finally:
        backend.stop()
