"""The add-on's client against a REAL backend subprocess: submit a rendered bundle, follow the job,
download and import the result with provenance; and the messages for a wrong token or no backend."""

from __future__ import annotations

import time
import pytest

from blender_addon.core.backend_client import UNREACHABLE, BackendClient, BackendError
from blender_addon.core.bundle_zip import zip_bundle
from blender_addon.core.job_watch import JobBoard, JobWatcher
from blender_addon.formats import protocol
from tests.fixtures.server import write_condition_bundle

JOB_TIMEOUT_SECONDS = 120.0


def _client(backend, token: str | None = None) -> BackendClient:
    return BackendClient(backend.url, token if token is not None else backend.token, timeout=10.0)


def test_health_reports_a_compatible_protocol(backend_server):
    health = _client(backend_server).health()
    assert health["status"] == "ok" and "echo-conditions" in health["job_kinds"]


def test_wrong_token_is_refused_with_a_clear_message(backend_server):
    with pytest.raises(BackendError) as error:
        _client(backend_server, "not-the-token").health()
    assert error.value.status == 401 and error.value.code == protocol.UNAUTHORIZED


def test_unreachable_backend_says_how_to_start_it():
    with pytest.raises(BackendError) as error:
        BackendClient("http://127.0.0.1:9", "x", timeout=2.0).health()
    assert error.value.code == UNREACHABLE and "Start" in error.value.hint


def test_invalid_params_come_back_with_the_servers_message(backend_server, tmp_path):
    bundle = zip_bundle(write_condition_bundle(tmp_path / "bundle"))
    with pytest.raises(BackendError) as error:
        _client(backend_server).submit("echo-conditions", {"no_such_param": 1}, bundle)
    assert error.value.code == protocol.INVALID_INPUT and error.value.message


def _follow_to_download(watcher: JobWatcher, board: JobBoard) -> list:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    downloaded = []
    while not downloaded and time.monotonic() < deadline:
        for event in watcher.drain():
            board.apply(event)
            assert event.kind != "error", event.message
            if event.kind == "downloaded":
                downloaded.append(event)
        time.sleep(0.05)
    assert downloaded, f"no result in {JOB_TIMEOUT_SECONDS} s; jobs: {board.ordered()}"
    return downloaded


def test_watcher_submits_a_bundle_follows_the_job_and_downloads_its_artifacts(backend_server, tmp_path):
    bundle = zip_bundle(write_condition_bundle(tmp_path / "bundle"))
    watcher, board = JobWatcher(lambda: _client(backend_server), poll_interval=0.05), JobBoard()
    watcher.submit("echo-conditions", {"thumbnail_size": 32}, bundle, download_to=tmp_path / "results")
    (event,) = _follow_to_download(watcher, board)
    watcher.stop()
    assert event.job["state"] == "succeeded" and board.ordered()[0]["progress"] == pytest.approx(1.0)
    assert (event.folder / "contact_sheet.png").is_file() and (event.folder / "summary.json").is_file()
    assert not board.active()


@pytest.mark.blender
def test_round_trip_renders_the_demo_head_submits_it_and_imports_the_result_with_provenance(backend_server, tmp_path):
    bpy = pytest.importorskip("bpy")
    from blender_addon.blender.condition_render import BundleRequest, render_bundle
    from blender_addon.blender.demo_head import add_demo_head
    from blender_addon.blender.importers import import_result
    from blender_addon.core.view_plan import OrbitSettings, plan_orbit_views

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = add_demo_head(bpy.context)
    request = BundleRequest(rig.name, tmp_path / "bundle", plan_orbit_views(OrbitSettings(views=2), 32, 32), 32, 32)
    for _ in render_bundle(request, bpy.context.scene):
        pass
    watcher, board = JobWatcher(lambda: _client(backend_server), poll_interval=0.05), JobBoard()
    watcher.submit("echo-conditions", {"thumbnail_size": 32}, zip_bundle(request.output_dir), download_to=tmp_path / "results")
    (event,) = _follow_to_download(watcher, board)
    watcher.stop()
    summary = import_result(event.folder, event.job, bpy.context.scene, rig)
    images = [image for image in bpy.data.images if image.get("avatar_foundry_job_id") == event.job["id"]]
    assert "image" in summary and images
    assert all(image["avatar_foundry_kind"] == "echo-conditions" for image in images)
    assert '"thumbnail_size": 32' in images[0]["avatar_foundry_params"]


def test_cancel_reaches_the_backend(backend_server, tmp_path):
    bundle = zip_bundle(write_condition_bundle(tmp_path / "bundle", views=6))
    client = _client(backend_server)
    job = client.submit("echo-conditions", {}, bundle)
    cancelled = client.cancel(job["id"])
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while cancelled["state"] not in protocol.FINAL_JOB_STATES and time.monotonic() < deadline:
        time.sleep(0.05)
        cancelled = client.job(job["id"])
    assert cancelled["state"] in ("cancelled", "succeeded")


def test_unknown_job_is_reported_as_not_found(backend_server):
    with pytest.raises(BackendError) as error:
        _client(backend_server).job("no-such-job")
    assert error.value.status == 404 and error.value.code == protocol.NOT_FOUND
