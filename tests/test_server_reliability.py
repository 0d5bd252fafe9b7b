"""Issue 23 items 8, 12, 14 and 16 against the real backend: hostile headers, large job lists,
idle and excess connections, and event streams when the backend stops."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from backend.cli import main
from blender_addon.formats import protocol
from tests.fixtures.server import start_backend, submit_bundle_job, wait_for_job, write_condition_bundle, zip_folder

STEP_DELAY = {"AVATAR_FOUNDRY_TEST_STEP_DELAY": "0.3"}


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> bytes:
    return zip_folder(write_condition_bundle(tmp_path_factory.mktemp("bundle"), views=2, size=16))


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """A backend that closes connections sending no request within 1 s and keeps at most 8."""
    running = start_backend(tmp_path_factory.mktemp("reliability") / "data", "--request-timeout-seconds", "1",
                            "--max-connections", "8")
    yield running
    running.stop()


def _forbidden(response: httpx.Response) -> str:
    assert response.status_code == 403 and response.json()["error"]["code"] == protocol.FORBIDDEN_ORIGIN
    return response.json()["error"]["message"]


def test_two_origin_headers_are_refused_even_when_the_first_is_loopback(backend):
    """Item 16: a second Origin header cannot hide behind a loopback first one."""
    with backend.client() as client:
        headers = [("Origin", "http://127.0.0.1:8000"), ("Origin", "http://evil.example")]
        assert "more than one Origin header" in _forbidden(client.get("/v1/health", headers=headers))
        assert client.get("/v1/health", headers=[("Origin", "http://127.0.0.1:8000")]).status_code == 200


@pytest.mark.parametrize("header, value", [("X-Forwarded-Host", "rebind.evil.example"),
                                           ("Forwarded", 'for=127.0.0.1;host="rebind.evil.example"')])
def test_a_forwarded_rebinding_name_is_refused(backend, header, value):
    """Item 16: a loopback server has no proxy in front, so a forwarded non-loopback host is refused."""
    with backend.client() as client:
        assert "rebind.evil.example" in _forbidden(client.get("/v1/health", headers={header: value}))
        assert client.get("/v1/health", headers={header: "localhost:8765"}).status_code == 200


def test_the_job_list_pages_without_params_and_a_single_job_has_them(backend, bundle_zip):
    """Item 12: GET /v1/jobs carries no params (a page stays small whatever the params), pages
    with next_before, and GET /v1/jobs/{id} still gives the params."""
    with backend.client() as client:
        ids = [submit_bundle_job(client, bundle_zip, {"thumbnail_size": 16 + index}).json()["id"] for index in range(3)]
        first = client.get("/v1/jobs", params={"limit": 2}).json()
        assert [job["id"] for job in first["jobs"]] == ids[::-1][:2]
        assert all("params" not in job for job in first["jobs"])
        second = client.get("/v1/jobs", params={"limit": 2, "before": first["next_before"]}).json()
        assert second["jobs"][0]["id"] == ids[0]
        assert client.get(f"/v1/jobs/{ids[1]}").json()["params"] == {"thumbnail_size": 17}
        for job_id in ids:
            wait_for_job(client, job_id)


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (recv gives b'' or a reset)."""
    sock.settimeout(30)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_connection_that_sends_no_request_is_closed_and_health_answers_meanwhile(backend):
    """Item 14: an idle connection is closed by the server; a slow one (half a request line) too."""
    host, port = backend.url.removeprefix("http://").split(":")
    idle = socket.create_connection((host, int(port)))
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    with backend.client() as client:
        assert client.get("/v1/health").status_code == 200
    assert _closed_by_server(idle) and _closed_by_server(slow)
    idle.close()
    slow.close()


def test_connections_past_the_cap_are_closed_and_the_backend_serves_again_once_they_go(backend):
    """Item 14: 40 idle connections against a cap of 8 neither exhaust file descriptors nor keep
    the backend from answering once the idle ones are timed out; the refusal is logged once."""
    host, port = backend.url.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port))) for _ in range(40)]
    try:
        assert all(_closed_by_server(sock) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    with backend.client() as client:
        assert client.get("/v1/health").json()["status"] == "ok"
    assert backend.log().count("the most this backend keeps") == 1


def test_a_graceful_stop_ends_each_stream_with_its_jobs_last_state(tmp_path, bundle_zip, capsys):
    """Item 8: stopping the backend mid-job sends the running job's final state (interrupted) to
    its stream before closing, and `jobs follow` of a queued job says the backend stopped (exit 3)
    with the command that goes on following."""
    running_backend = start_backend(tmp_path / "data", env=STEP_DELAY)
    long_bundle = zip_folder(write_condition_bundle(tmp_path / "long", views=40, size=16))  # 41 slow steps
    with running_backend.client() as client:
        running = submit_bundle_job(client, long_bundle).json()["id"]
        queued = submit_bundle_job(client, bundle_zip).json()["id"]
        wait_for_job(client, running, states=("running",))
    payloads: list[dict] = []

    def read_stream() -> None:
        with httpx.stream("GET", f"{running_backend.url}/v1/jobs/{running}/events", headers=running_backend.headers,
                          timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    payloads.append(json.loads(line[6:]))

    reader = threading.Thread(target=read_stream)
    reader.start()
    follow_status: list[int] = []
    follower = threading.Thread(target=lambda: follow_status.append(
        main(["jobs", "--data-dir", str(running_backend.data_dir), "follow", queued])))
    follower.start()
    printed = ""
    while not payloads or queued not in printed:
        threading.Event().wait(0.05)
        printed += capsys.readouterr().out
    running_backend.stop()
    reader.join(60)
    follower.join(60)
    assert payloads[-1]["state"] == "failed" and payloads[-1]["error"]["code"] == protocol.INTERRUPTED
    assert follow_status == [3]
    err = capsys.readouterr().err
    assert f"the backend stopped while job {queued} was queued" in err and f"jobs follow {queued}" in err
