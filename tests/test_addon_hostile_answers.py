"""The add-on's client and job watcher meeting answers a backend should never give (issue 23, items
6-8), against a real local HTTP server that sends them: each becomes one clear message on the board,
no partial file is left under a final name, and no follower dies silently."""

from __future__ import annotations

import time

import pytest

from blender_addon.core.backend_client import BAD_ANSWER, BackendClient, BackendError
from blender_addon.core.job_watch import NOT_SUBMITTED, UNKNOWN, JobBoard, JobWatcher
from blender_addon.formats.protocol import PROTOCOL_VERSION
from tests.fixtures.hostile_server import HostileServer

WAIT_SECONDS = 30.0
JOB = {"id": "j1", "kind": "multiview", "state": "running", "stage": "painting images 1-8 of 24", "progress": 0.2,
       "created_at": "2026-01-01T00:00:00"}
HEALTH = {"status": "ok", "protocol_version": PROTOCOL_VERSION, "version": "0.1.0", "device": "cpu", "device_name": "CPU"}


@pytest.fixture
def server():
    with HostileServer() as running:
        running.answer("/v1/health", HEALTH)
        yield running


def _client(server: HostileServer) -> BackendClient:
    return BackendClient(server.url, "token", timeout=5.0)


def _error(call) -> BackendError:
    with pytest.raises(BackendError) as raised:
        call()
    return raised.value


def test_health_answered_by_a_web_page_or_a_list_names_the_url_to_check(server):
    """Another program on the backend's port (a router page, a dev server) is named as such, not a traceback."""
    server.answer("/v1/health", b"<!DOCTYPE html><html><body>Login</body></html>", content_type="text/html")
    error = _error(_client(server).health)
    assert error.code == BAD_ANSWER and "not JSON" in error.message and "<!DOCTYPE html>" in error.message
    assert "Backend URL" in error.hint
    server.answer("/v1/health", [1, 2, 3])
    assert "JSON list where an object belongs" in _error(_client(server).health).message


def test_a_server_error_whose_error_is_a_string_is_shown_with_that_string(server):
    """A 500 answering {"error": "database is locked"} shows the reason, not 'Internal Server Error' or a KeyError."""
    server.answer("/v1/jobs/j1", {"error": "database is locked"}, status=500)
    error = _error(lambda: _client(server).job("j1"))
    assert error.status == 500 and "database is locked" in error.message


def test_a_job_without_its_keys_or_a_body_cut_short_is_refused_naming_the_request(server):
    """A job object missing its state, or an answer that breaks off, says which request got what."""
    server.answer("/v1/jobs/j1", {"id": "j1", "kind": "multiview"})
    assert "lacks state" in _error(lambda: _client(server).job("j1")).message
    server.answer("/v1/jobs/j1", JOB, cut_to=20)
    error = _error(lambda: _client(server).job("j1"))
    assert error.code == BAD_ANSWER and "GET /jobs/j1" in error.message and "cut short" in error.message


def test_a_download_cut_short_leaves_no_file_under_its_name(server, tmp_path):
    """A 1000-byte artifact of which 300 bytes arrive is refused, and nothing (not even a temp file) stays behind."""
    server.answer("/v1/jobs/j1/artifacts", {"artifacts": [{"name": "avatar.glb", "size": 1000}]})
    server.answer("/v1/jobs/j1/artifacts/avatar.glb", bytes(range(250)) * 4, content_type="application/octet-stream", cut_to=300)
    error = _error(lambda: _client(server).download_all("j1", tmp_path / "results"))
    assert "avatar.glb was cut short: 300 of 1000 bytes" in error.message
    assert not any(path.is_file() for path in (tmp_path / "results").rglob("*"))
    server.answer("/v1/jobs/j1/artifacts/avatar.glb", bytes(range(250)) * 4, content_type="application/octet-stream")
    (path,) = _client(server).download_all("j1", tmp_path / "results")
    assert path == tmp_path / "results" / "avatar.glb" and path.read_bytes() == bytes(range(250)) * 4


def test_an_artifact_name_holding_nul_or_leaving_the_folder_is_refused(server, tmp_path):
    """Names that cannot be files in the download folder are refused by name before anything is written."""
    for name in ("images/a\x00.png", "../outside.png", "/etc/passwd"):
        server.answer("/v1/jobs/j1/artifacts", {"artifacts": [{"name": name, "size": 3}]})
        error = _error(lambda: _client(server).download_all("j1", tmp_path / "results"))
        assert error.code == BAD_ANSWER and repr(name) in error.message
    assert not (tmp_path / "results").exists()


def _drain_until(watcher: JobWatcher, board: JobBoard, done) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        assert time.monotonic() < deadline, f"board: {board.jobs}, error: {board.last_error!r}"
        for event in watcher.drain():
            board.apply(event)
        time.sleep(0.02)


def test_a_follower_survives_a_bad_answer_and_a_lost_backend_and_the_error_box_clears(server, tmp_path):
    """The job board says the backend is not answering (it no longer shows the job as if all were well),
    keeps following through a garbled answer and a backend that went away, resumes at once when Check
    wakes it, and the error box empties once the backend answers again."""
    watcher, board = JobWatcher(lambda: _client(server), poll_interval=0.02, retry_interval=3600.0), JobBoard()
    server.answer("/v1/jobs/j1", JOB)
    watcher.follow("j1", tmp_path / "results")
    _drain_until(watcher, board, lambda: board.jobs.get("j1", {}).get("state") == "running")
    server.answer("/v1/jobs/j1", b"<html>502 Bad Gateway</html>", content_type="text/html")
    _drain_until(watcher, board, lambda: "j1" in board.lost_contact)
    assert "not JSON" in board.last_error and board.last_error.startswith("backend not answering")
    port = server.port
    server.stop()
    watcher.resume(board.ordered(), tmp_path / "results")
    _drain_until(watcher, board, lambda: "cannot reach the backend" in board.lost_contact.get("j1", ""))
    assert watcher.following() == ["j1"]
    server.port = port
    server.start()
    server.answer("/v1/jobs/j1", {**JOB, "state": "succeeded", "progress": 1.0})
    server.answer("/v1/jobs/j1/artifacts", {"artifacts": [{"name": "summary.json", "size": 2}]})
    server.answer("/v1/jobs/j1/artifacts/summary.json", b"{}")
    watcher.resume(board.ordered(), tmp_path / "results")
    _drain_until(watcher, board, lambda: board.jobs["j1"]["state"] == "succeeded" and not board.lost_contact)
    watcher.stop()
    assert board.last_error == "" and (tmp_path / "results" / "j1" / "summary.json").read_bytes() == b"{}"


def test_a_submission_to_a_backend_that_is_down_is_a_failure_on_the_board(tmp_path):
    """'multiview' sent while the backend is down shows as 'not submitted' with the reason, never as submitted."""
    watcher, board = JobWatcher(lambda: BackendClient("http://127.0.0.1:9", "x", timeout=2.0), poll_interval=0.02), JobBoard()
    local_id = watcher.submit("multiview", {"style": "x"}, None, download_to=tmp_path)
    _drain_until(watcher, board, lambda: board.jobs.get(local_id, {}).get("state") == NOT_SUBMITTED)
    job = board.jobs[local_id]
    assert job["kind"] == "multiview" and "multiview was not submitted: cannot reach the backend" in job["error"]["message"]
    assert board.last_error == job["error"]["message"] and not board.active()


def test_an_unexpected_exception_in_a_watcher_thread_reaches_the_board(server, tmp_path):
    """A bug or a broken preference (any exception, not only the client's own) ends the thread with a message."""
    def broken_client() -> BackendClient:
        raise KeyError("bl_ext.user_default.avatar_foundry")

    watcher, board = JobWatcher(broken_client, poll_interval=0.02), JobBoard()
    local_id = watcher.submit("train-eg3d", {}, None, download_to=tmp_path)
    _drain_until(watcher, board, lambda: board.jobs.get(local_id, {}).get("state") == NOT_SUBMITTED)
    assert "unexpected KeyError" in board.jobs[local_id]["error"]["message"]
    assert not watcher.busy()


def test_a_job_the_backend_no_longer_knows_ends_its_follower_with_that_reason(server, tmp_path):
    """After the backend lost its job records the job is marked with the backend's 404 message, not left 'running'."""
    watcher, board = JobWatcher(lambda: _client(server), poll_interval=0.02), JobBoard()
    board.jobs["gone"] = {**JOB, "id": "gone"}
    watcher.resume(board.ordered(), tmp_path)
    _drain_until(watcher, board, lambda: "error" in board.jobs["gone"])
    assert "no such route" in board.jobs["gone"]["error"]["message"] and watcher.following() == []
    assert board.jobs["gone"]["state"] == UNKNOWN, "no longer shown as running"
