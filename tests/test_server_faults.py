"""The real backend under faults: a full disk, an unwritable data dir, a crash mid-upload, many open
event streams, hostile numbers, a deleted lock file. In each case nothing is lost, every refusal
names what is wrong, and the server keeps serving.

A full disk is simulated with the test-only fault injection AVATAR_FOUNDRY_TEST_DISK_FULL_FLAG
(every job-store write fails as SQLite fails on a full disk while the flag file exists); unwritable
folders are real, with the server running as an unprivileged user (see tests/fixtures/server.py).
"""

from __future__ import annotations

import http.client
import json
import socket
import stat
import subprocess
import time
from urllib.parse import urlparse

import pytest

from backend.server.faults import DISK_FULL_FLAG_ENV, STEP_DELAY_ENV
from tests.fixtures.server import (REPO_ROOT, make_unwritable, make_writable, serve_command, shared_folder, start_backend,
                                   submit_bundle_job, unprivileged_options, wait_for_job, write_condition_bundle, zip_folder)

STREAM_CAP = 50


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory):
    return zip_folder(write_condition_bundle(tmp_path_factory.mktemp("bundle"), views=3))


@pytest.fixture(scope="module")
def faulty_backend(tmp_path_factory):
    """A server whose jobs step slowly and whose "disk" a test fills by creating ``flag``."""
    data_dir = tmp_path_factory.mktemp("faulty-data")
    flag = data_dir.parent / f"{data_dir.name}.disk-full"
    running = start_backend(data_dir, "--max-event-streams", str(STREAM_CAP),
                            env={STEP_DELAY_ENV: "0.3", DISK_FULL_FLAG_ENV: str(flag)})
    running.disk_full_flag = flag
    yield running
    flag.unlink(missing_ok=True)
    running.stop()


def strict_json(text: str):
    """Parse as strict JSON: NaN and Infinity are not JSON."""
    def refuse(name):
        raise AssertionError(f"the server sent {name}, which is not JSON")
    return json.loads(text, parse_constant=refuse)


def wait_for_log(backend, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in backend.log():
        assert time.monotonic() < deadline, f"the server never logged {text!r}"
        time.sleep(0.05)


def keep_alive_connection(backend) -> http.client.HTTPConnection:
    url = urlparse(backend.url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=30)


def post_json(connection: http.client.HTTPConnection, backend, body: bytes) -> http.client.HTTPResponse:
    connection.request("POST", "/v1/jobs", body, {**backend.headers, "Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response


def test_a_full_disk_fails_the_running_job_with_disk_full_once_space_returns_and_submissions_get_507(faulty_backend, bundle_zip,
                                                                                                      tmp_path):
    long_bundle = zip_folder(write_condition_bundle(tmp_path, views=8))  # 9 slow steps: the disk fills mid-job
    with faulty_backend.client() as client:
        job = submit_bundle_job(client, long_bundle).json()
        wait_for_job(client, job["id"], ("running",), condition=lambda j: j["progress"] < 0.5)
        faulty_backend.disk_full_flag.touch()
        refused = submit_bundle_job(client, bundle_zip)
        assert refused.status_code == 507
        assert refused.json()["error"]["code"] == "DISK_FULL"
        assert refused.headers["connection"] == "close"
        assert sorted(p.name for p in (faulty_backend.data_dir / "jobs").iterdir()) == [job["id"]]  # the refused upload left nothing
        wait_for_log(faulty_backend, f"could not record the end of job {job['id']}")
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "running"  # its end cannot be recorded yet
        faulty_backend.disk_full_flag.unlink()
        failed = wait_for_job(client, job["id"])
        assert failed["state"] == "failed" and failed["error"]["code"] == "DISK_FULL"
        assert client.delete(f"/v1/jobs/{job['id']}").json() == {"deleted": job["id"]}
        after = submit_bundle_job(client, bundle_zip).json()
        assert wait_for_job(client, after["id"])["state"] == "succeeded"  # the server carries on


def test_a_5xx_answer_closes_its_keep_alive_connection_and_a_4xx_keeps_it_usable(faulty_backend):
    connection = keep_alive_connection(faulty_backend)
    refused = post_json(connection, faulty_backend, b'{"kind": "no-such-kind"}')
    assert refused.status == 422 and refused.getheader("connection") is None
    first_socket = connection.sock.getsockname()
    connection.request("GET", "/v1/health", headers=faulty_backend.headers)
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["status"] == "ok"
    assert connection.sock.getsockname() == first_socket  # served on the same connection
    faulty_backend.disk_full_flag.touch()
    try:
        full = post_json(connection, faulty_backend, json.dumps({"kind": "generate-avatar", "params": {"checkpoint": "job:x"}}).encode())
    finally:
        faulty_backend.disk_full_flag.unlink()
    assert full.status == 507 and full.getheader("connection") == "close"
    assert connection.sock is None  # the client was told, so it closed; the next request opens a new one
    connection.close()


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_non_finite_numbers_are_refused_naming_the_field_and_store_nothing(faulty_backend, number):
    with faulty_backend.client() as client:
        before = len(client.get("/v1/jobs").json()["jobs"])
        body = '{"kind": "generate-avatar", "params": {"checkpoint": "job:x", "mesh_level": %s}}' % number
        response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "params.mesh_level"
        listing = client.get("/v1/jobs")
        assert len(strict_json(listing.text)["jobs"]) == before


@pytest.mark.parametrize(("params", "field"), [
    ('"seed": -1', "params.seed"),
    ('"seed": %d' % 2**70, "params.seed"),
    ('"mesh_resolution": ' + "9" * 5000, None),
    ('"style_prior": "%s"' % ("x" * 100_000), "params.style_prior"),
    ('"w": [[1e308, 1]]', "params.w.0.0"),
])
def test_out_of_range_params_are_invalid_input_naming_the_field(faulty_backend, params, field):
    body = '{"kind": "generate-avatar", "params": {"checkpoint": "job:x", %s}}' % params
    with faulty_backend.client() as client:
        response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "INVALID_INPUT"
    assert error["field"] in ((field,) if field else ("params.mesh_resolution", "request"))


def test_a_bundle_with_non_numeric_landmarks_is_refused_naming_them(faulty_backend, tmp_path):
    root = write_condition_bundle(tmp_path, views=1)
    manifest = json.loads((root / "conditions.json").read_text())
    manifest["renders"][0]["landmarks"] = {"nose": ["left", 2, 1]}
    (root / "conditions.json").write_text(json.dumps(manifest))
    with faulty_backend.client() as client:
        response = submit_bundle_job(client, zip_folder(root))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "renders[0].landmarks.nose"


def open_stream(backend, job_id: str) -> tuple[socket.socket, bytes]:
    """An event stream on its own connection: the socket and what arrived first (headers, first event)."""
    url = urlparse(backend.url)
    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    connection.sendall(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: {url.netloc}\r\n"
                       f"Authorization: Bearer {backend.token}\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received or (b" 200 " in received.split(b"\r\n", 1)[0] and b"data: " not in received):
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return connection, received


def test_open_event_streams_leave_the_api_serving_and_past_the_cap_get_503(faulty_backend, bundle_zip):
    with faulty_backend.client() as client:
        job = submit_bundle_job(client, bundle_zip).json()
        streams = [open_stream(faulty_backend, job["id"]) for _ in range(STREAM_CAP)]
        try:
            assert all(first.startswith(b"HTTP/1.1 200") and b"data: {" in first for _, first in streams)
            health = client.get("/v1/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
            refused = client.get(f"/v1/jobs/{job['id']}/events")
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "BUSY" and "--max-event-streams" in refused.json()["error"]["hint"]
        finally:
            for connection, _ in streams:
                connection.close()
        client.post(f"/v1/jobs/{job['id']}/cancel")
        wait_for_job(client, job["id"])
        deadline = time.monotonic() + 60
        while (again := client.get(f"/v1/jobs/{job['id']}/events")).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.1)  # places are given back as the streams end
        assert again.status_code == 200 and strict_json(again.text.split("data: ", 1)[1])["state"] == "cancelled"


def test_a_crash_mid_upload_leaves_no_orphan_folder_after_the_restart(tmp_path, bundle_zip):
    data_dir = tmp_path / "data"
    first = start_backend(data_dir)
    with first.client() as client:
        job = submit_bundle_job(client, bundle_zip).json()
        wait_for_job(client, job["id"])
    first.kill()
    orphan = data_dir / "jobs" / "0123456789abcdef"
    (orphan / "inputs").mkdir(parents=True)
    (orphan / "inputs" / "conditions.json").write_text("{")
    unrelated = data_dir / "jobs" / "notes"
    unrelated.mkdir()
    run_without_record = data_dir / "jobs" / "fedcba9876543210" / "output"
    run_without_record.mkdir(parents=True)
    restarted = start_backend(data_dir)
    try:
        assert not orphan.exists()
        assert (data_dir / "jobs" / job["id"] / "output" / "contact_sheet.png").is_file()
        assert unrelated.is_dir()  # only folders named like job ids are the backend's to remove
        assert run_without_record.is_dir()  # results are never removed, even when their record was lost
    finally:
        restarted.stop()


def test_the_data_dir_and_job_database_are_private_to_the_user(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    running = start_backend(data_dir)
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((data_dir / "jobs.sqlite3").stat().st_mode) == 0o600
    finally:
        running.stop()


def test_deleting_the_lock_and_server_files_does_not_let_a_second_backend_share_the_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    running = start_backend(data_dir)
    try:
        for name in ("server.lock", "server.json"):
            (data_dir / name).unlink(missing_ok=True)
        with pytest.raises(RuntimeError, match="another backend is already running"):
            start_backend(data_dir)
        with running.client() as client:
            assert client.get("/v1/health").status_code == 200
    finally:
        running.stop()


def test_serve_on_an_unwritable_data_dir_says_so_in_one_line_naming_the_folder():
    with shared_folder() as folder:
        data_dir = folder / "data"
        data_dir.mkdir()
        (data_dir / "jobs").mkdir()
        (data_dir / "models").mkdir()
        make_unwritable(data_dir)
        result = subprocess.run(serve_command(data_dir), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                                **unprivileged_options(folder))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[0].startswith("error [DATA_DIR_UNWRITABLE]")
    assert str(data_dir) in result.stderr


def test_uploads_into_an_unwritable_jobs_folder_and_undeletable_job_folders_are_named_and_nothing_is_lost(bundle_zip):
    with shared_folder() as folder:
        running = start_backend(folder / "data", unprivileged=True)
        jobs_dir = running.data_dir / "jobs"
        try:
            with running.client() as client:
                done = submit_bundle_job(client, bundle_zip).json()
                wait_for_job(client, done["id"])
                make_unwritable(jobs_dir)
                refused = submit_bundle_job(client, bundle_zip)
                assert refused.status_code == 507
                assert refused.json()["error"]["code"] == "DATA_DIR_UNWRITABLE" and str(jobs_dir) in refused.json()["error"]["message"]
                assert [job["id"] for job in client.get("/v1/jobs").json()["jobs"]] == [done["id"]]
                make_writable(jobs_dir)

                output_dir = jobs_dir / done["id"] / "output"
                make_unwritable(output_dir)
                kept = client.delete(f"/v1/jobs/{done['id']}")
                assert kept.status_code == 507 and str(output_dir) in kept.json()["error"]["message"]
                assert client.get(f"/v1/jobs/{done['id']}").json()["state"] == "succeeded"  # still listed: delete it again later
                make_writable(output_dir)
                assert client.delete(f"/v1/jobs/{done['id']}").json() == {"deleted": done["id"]}
                assert not (jobs_dir / done["id"]).exists()
                assert client.get("/v1/health").status_code == 200
        finally:
            running.stop()


def test_a_stream_refused_for_an_unknown_job_is_404_and_takes_no_place(faulty_backend):
    with faulty_backend.client() as client:
        for _ in range(STREAM_CAP + 1):
            assert client.get("/v1/jobs/0000000000000000/events").status_code == 404
        assert client.get("/v1/health").status_code == 200


def test_an_oversized_json_job_request_is_refused_with_413_before_it_is_parsed(faulty_backend):
    body = b'{"kind": "train-eg3d", "params": {"dataset": "' + b"x" * (9 << 20) + b'"}}'
    with faulty_backend.client() as client:
        response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and response.json()["error"]["field"] == "request"
        assert client.get("/v1/health").status_code == 200
