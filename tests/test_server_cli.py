"""The ``avatar-foundry`` serve / doctor / jobs commands, against a real backend where they need one."""

from __future__ import annotations

import json

import pytest

from backend.cli import main
from tests.fixtures.server import submit_bundle_job, wait_for_job, write_condition_bundle, zip_folder


@pytest.fixture(scope="module")
def finished_job(backend_server, tmp_path_factory) -> dict:
    bundle = write_condition_bundle(tmp_path_factory.mktemp("bundle"), views=2, size=16)
    with backend_server.client() as client:
        response = submit_bundle_job(client, zip_folder(bundle), {"thumbnail_size": 16})
        return wait_for_job(client, response.json()["id"])


def _jobs(backend_server, *arguments: str) -> int:
    """Run ``avatar-foundry jobs`` finding URL and token from the data dir, as a user would."""
    return main(["jobs", "--data-dir", str(backend_server.data_dir), *arguments])


def test_jobs_list_shows_each_job_with_state_and_progress(backend_server, finished_job, capsys):
    assert _jobs(backend_server, "list") == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(finished_job["id"]))
    assert "echo-conditions" in line and "succeeded" in line and "100.0%" in line


def test_jobs_show_prints_the_job_object(backend_server, finished_job, capsys):
    assert _jobs(backend_server, "show", finished_job["id"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == finished_job["id"] and shown["state"] == "succeeded"


def test_jobs_fetch_downloads_every_artifact(backend_server, finished_job, tmp_path, capsys):
    assert _jobs(backend_server, "fetch", finished_job["id"], str(tmp_path / "out")) == 0
    output = backend_server.data_dir / "jobs" / finished_job["id"] / "output"
    served = sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file())
    fetched = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert fetched == served and len(fetched) == 4
    assert (tmp_path / "out/contact_sheet.png").read_bytes() == (output / "contact_sheet.png").read_bytes()


def test_jobs_cancel_reports_the_resulting_state(backend_server, finished_job, capsys):
    assert _jobs(backend_server, "cancel", finished_job["id"]) == 0
    assert "succeeded" in capsys.readouterr().out


def test_jobs_submit_uploads_a_bundle_folder_and_follows_it_to_the_end(backend_server, tmp_path, capsys):
    bundle = write_condition_bundle(tmp_path / "bundle", views=2, size=16)
    assert _jobs(backend_server, "submit", "echo-conditions", "--bundle", str(bundle), "--param", "thumbnail_size=24", "--follow") == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "echo-conditions" in last and "succeeded" in last
    job_id = last.split()[0]
    with backend_server.client() as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["params"] == {"thumbnail_size": 24}


def test_jobs_submit_reports_the_servers_refusal(backend_server, capsys):
    assert _jobs(backend_server, "submit", "echo-conditions", "--params", '{"thumbnail_size": "huge"}') == 2
    assert "params.thumbnail_size" in capsys.readouterr().err


def test_jobs_follow_prints_progress_until_the_job_ends(backend_server, tmp_path, capsys):
    bundle = write_condition_bundle(tmp_path / "bundle", views=3, size=16)
    with backend_server.client() as client:
        job_id = submit_bundle_job(client, zip_folder(bundle), {"thumbnail_size": 16}).json()["id"]
    assert _jobs(backend_server, "follow", job_id) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(job_id) and "succeeded" in lines[-1]


def test_jobs_delete_removes_a_finished_job(backend_server, tmp_path, capsys):
    bundle = write_condition_bundle(tmp_path / "bundle", views=1, size=16)
    with backend_server.client() as client:
        job_id = wait_for_job(client, submit_bundle_job(client, zip_folder(bundle)).json()["id"])["id"]
    assert _jobs(backend_server, "delete", job_id) == 0
    assert _jobs(backend_server, "show", job_id) == 2
    assert not (backend_server.data_dir / "jobs" / job_id).exists()


def test_jobs_on_an_unknown_id_prints_the_servers_error(backend_server, capsys):
    assert _jobs(backend_server, "show", "nosuchjob") == 2
    assert "NOT_FOUND" in capsys.readouterr().err


def test_jobs_without_a_backend_says_how_to_start_one(tmp_path, capsys):
    assert main(["jobs", "--url", "http://127.0.0.1:9", "--token", "x", "list"]) == 2
    assert "avatar-foundry serve" in capsys.readouterr().err


def test_serve_refuses_a_public_address_without_allow_remote(tmp_path, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    assert "--allow-remote" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cuda:7", "gpu"])
def test_serve_refuses_a_device_this_machine_does_not_have(tmp_path, capsys, device):
    assert main(["serve", "--device", device, "--data-dir", str(tmp_path)]) == 2
    assert "device" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["serve"], ["doctor"], ["jobs"], ["jobs", "fetch"], ["jobs", "submit"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_doctor_reports_versions_device_data_dir_models_and_bpy(backend_server, capsys):
    assert main(["doctor", "--data-dir", str(backend_server.data_dir)]) == 0
    report = capsys.readouterr().out
    for expected in ("torch", "diffusers", "device         cpu", str(backend_server.data_dir), "token          present",
                     "models         0", "echo-conditions", "bpy            works (Blender 5.0"):
        assert expected in report, report


def test_the_listening_socket_is_tcp_so_keep_alive_responses_are_not_delayed():
    """asyncio turns Nagle off (TCP_NODELAY) only for sockets whose proto is TCP; with proto 0
    every response on a kept-alive connection waited ~40 ms for a delayed ACK."""
    import socket

    from backend.server.serving import bind_socket

    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        with socket.create_connection(sock.getsockname()[:2]):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
