"""Issue 23 items 5, 7, 8 (CLI) and 10: ``avatar-foundry jobs`` meeting bad answers and a bad
``server.json``: one line naming what was wrong, exit status 2 (3 when the backend went away
mid-follow), no traceback, and no partial file left under an artifact's name.

The bad answers come from a real HTTP server on 127.0.0.1 (the standard library's) scripted per
path: HTML pages, JSON lists, job objects without keys, bodies cut short, broken event streams.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

from backend.cli import main
from blender_addon.formats import protocol

JOB = {"id": "0123456789abcdef", "kind": "echo-conditions", "state": "running", "progress": 0.5, "stage": "step 1",
       "eta_seconds": 3.0, "error": None, "params": {}, "created_at": "2026-01-01T00:00:00Z", "started_at": None,
       "finished_at": None}
Answer = Callable[[BaseHTTPRequestHandler], None]


def _send(status: int, body: bytes, content_type: str = "application/json", length: int | None = None) -> Answer:
    """An answer with ``body``; ``length`` announces another Content-Length (a body cut short)."""
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True

    return answer


def _stream(*lines: bytes) -> Answer:
    """An event stream sending ``lines`` and then dropping the connection."""
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for line in lines:
            handler.wfile.write(line)
        handler.wfile.flush()
        handler.close_connection = True

    return answer


class ScriptedServer:
    """A real HTTP server answering each path (without query) with the scripted answer."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = answers.get(self.path.split("?")[0], _send(404, b'{"error": "no"}'))
                answer(self)

            do_POST = do_GET
            do_DELETE = do_GET

            def log_message(self, *arguments) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture(autouse=True)
def token_in_environment(monkeypatch):
    monkeypatch.setenv("AVATAR_FOUNDRY_TOKEN", "test-token")


def _jobs(server: ScriptedServer, *arguments: str) -> int:
    return main(["jobs", "--url", server.url, "--data-dir", "/nonexistent-data-dir", *arguments])


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error")
    return err.splitlines()[0]


@pytest.mark.parametrize("answer, expected", [
    (_send(200, b"<html><body>Router login</body></html>", "text/html"), "that is not JSON (text/html)"),
    (_send(200, b"[1, 2, 3]"), "a JSON list where an object belongs"),
    (_send(200, b'{"jobs": [{"id": "x"}]}'), "a job object without a valid 'kind'"),
    (_send(200, b'{"jobs": [], "next', length=400), "cut short"),
    (_send(500, b'{"error": "boom"}'), "HTTP 500"),
])
def test_jobs_list_names_a_bad_answer_in_one_line(server, capsys, answer, expected):
    """Item 5: an HTML page, a JSON list, a job without its keys, a body cut short, an error that is
    a string: one line naming what was wrong, exit 2, never a traceback."""
    server.answers["/v1/jobs"] = answer
    assert _jobs(server, "list") == 2
    assert expected in _one_error(capsys)


@pytest.mark.parametrize("lines, expected", [
    ((b"data: {not json\n\n",), "not JSON"),
    ((b"data: \xff\xfe\n\n",), "not UTF-8"),
])
def test_jobs_follow_names_a_broken_event_line(server, capsys, lines, expected):
    """Item 5: an event stream with a non-JSON or non-UTF-8 line."""
    server.answers[f"/v1/jobs/{JOB['id']}/events"] = _stream(*lines)
    assert _jobs(server, "follow", JOB["id"]) == 2
    assert expected in _one_error(capsys)


def test_jobs_follow_says_the_backend_went_away_and_how_to_go_on(server, capsys):
    """Item 8: a stream dropped mid-job is not reported as a failed job: the CLI says the backend
    went away and which command goes on following, and exits 3."""
    server.answers[f"/v1/jobs/{JOB['id']}/events"] = _stream(f"data: {json.dumps(JOB)}\n\n".encode())
    assert _jobs(server, "follow", JOB["id"]) == 3
    captured = capsys.readouterr()
    assert "running" in captured.out
    assert f"avatar-foundry jobs follow {JOB['id']}" in captured.err and "Traceback" not in captured.err


def test_jobs_fetch_cut_short_leaves_no_file_under_the_artifact_name(server, capsys, tmp_path):
    """Item 7: a download that breaks off is an error (exit 2) and leaves neither the artifact's
    name nor a temp file behind; a complete one lands under its name."""
    server.answers[f"/v1/jobs/{JOB['id']}/artifacts"] = _send(200, json.dumps(
        {"artifacts": [{"name": "ok.bin", "size": 5}, {"name": "model/ckpt.safetensors", "size": 100_000}]}).encode())
    server.answers[f"/v1/jobs/{JOB['id']}/artifacts/ok.bin"] = _send(200, b"12345", "application/octet-stream")
    server.answers[f"/v1/jobs/{JOB['id']}/artifacts/model/ckpt.safetensors"] = _send(
        200, b"x" * 3000, "application/octet-stream", length=100_000)
    assert _jobs(server, "fetch", JOB["id"], str(tmp_path)) == 2
    assert "cut short: 3000 of 100000 bytes" in _one_error(capsys)
    assert (tmp_path / "ok.bin").read_bytes() == b"12345"
    assert sorted(path.name for path in (tmp_path / "model").iterdir()) == []


def test_jobs_fetch_refuses_a_size_that_disagrees_with_the_listing(server, capsys, tmp_path):
    """Item 7: a body shorter than the listed size (no Content-Length to tell) is refused too."""
    server.answers[f"/v1/jobs/{JOB['id']}/artifacts"] = _send(200, b'{"artifacts": [{"name": "a.png", "size": 10}]}')
    server.answers[f"/v1/jobs/{JOB['id']}/artifacts/a.png"] = _stream(b"12345")
    assert _jobs(server, "fetch", JOB["id"], str(tmp_path)) == 2
    assert "cut short: 5 of 10 bytes" in _one_error(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, expected", [
    (b"\xff\xfe{}", "cannot be read as JSON"),
    (b'{"url": 8765}', "has no 'url'"),
    (b"[]", "has no 'url'"),
    (None, "cannot be read as JSON"),
])
def test_a_bad_server_json_is_named_in_one_line(tmp_path, capsys, content, expected):
    """Item 5: a server.json that is not UTF-8, has a non-string url, is a list or is a folder."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / protocol.TOKEN_FILE_NAME).write_text("secret")
    info = data_dir / protocol.SERVER_INFO_FILE_NAME
    if content is None:
        info.mkdir()
    else:
        info.write_bytes(content)
    assert main(["jobs", "--data-dir", str(data_dir), "list"]) == 2
    line = _one_error(capsys)
    assert str(info) in line and expected in line


def test_the_token_comes_from_the_environment_or_a_file_and_token_on_the_command_line_warns(server, capsys, monkeypatch,
                                                                                             tmp_path):
    """Item 10: AVATAR_FOUNDRY_TOKEN or --token-file is used without showing the token in the
    process list; --token still works but warns that every local user can read it."""
    seen: list[str] = []

    def record_token(handler: BaseHTTPRequestHandler) -> None:
        seen.append(handler.headers.get("Authorization"))
        _send(200, b'{"jobs": []}')(handler)

    server.answers["/v1/jobs"] = record_token
    monkeypatch.setenv("AVATAR_FOUNDRY_TOKEN", "from-the-environment")
    assert main(["jobs", "--url", server.url, "--data-dir", "/nonexistent-data-dir", "list"]) == 0
    assert "warning" not in capsys.readouterr().err
    (tmp_path / "token").write_text("from-a-file\n")
    assert main(["jobs", "--url", server.url, "--token-file", str(tmp_path / "token"), "list"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["jobs", "--url", server.url, "--token", "typed", "list"]) == 0
    assert "visible to every user" in capsys.readouterr().err
    assert seen == ["Bearer from-the-environment", "Bearer from-a-file", "Bearer typed"]


def test_jobs_follow_reconnect_waits_for_the_backend_and_goes_on_to_the_end(server, capsys):
    """Item 8: with --reconnect, a dropped stream is followed again once the backend answers,
    until the job's final state (exit 0 for a success)."""
    finished = {**JOB, "state": "succeeded", "progress": 1.0, "stage": "done", "eta_seconds": None}
    answers = iter([_stream(f"data: {json.dumps(JOB)}\n\n".encode()),
                    _stream(f"data: {json.dumps(finished)}\n\n".encode())])
    server.answers[f"/v1/jobs/{JOB['id']}/events"] = lambda handler: next(answers)(handler)
    server.answers["/v1/health"] = _send(200, b'{"status": "ok"}')
    assert _jobs(server, "follow", "--reconnect", JOB["id"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].split()[2] == "succeeded"
    assert "waiting for it to start again" in captured.err


def test_jobs_fetch_into_a_folder_that_cannot_be_made_names_it(server, capsys, tmp_path):
    """A destination that is a file, not a folder: one line naming it, no traceback."""
    server.answers[f"/v1/jobs/{JOB['id']}/artifacts"] = _send(200, b'{"artifacts": [{"name": "a/b.png", "size": 1}]}')
    server.answers[f"/v1/jobs/{JOB['id']}/artifacts/a/b.png"] = _send(200, b"x", "image/png")
    (tmp_path / "a").write_text("a file where the folder belongs")
    assert _jobs(server, "fetch", JOB["id"], str(tmp_path)) == 2
    line = _one_error(capsys)
    assert str(tmp_path / "a") in line
