"""Issue 23 item 13: a models scan pointed at the wrong folder is bounded (depth, entries), runs as a
job with progress and cancel, and is refused in one line naming the folder and the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backend.errors import Cancelled, InvalidInput
from backend.models.scan_bounds import ScanLimits, check_scan_bounds
from backend.progress import SilentProgress
from blender_addon.formats import protocol
from tests.fixtures.server import start_backend, wait_for_job


def _wide_tree(root: Path, files: int, per_folder: int = 500) -> Path:
    for index in range(files):
        folder = root / f"d{index // per_folder:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:06d}.txt").touch()
    return root


@pytest.fixture(scope="module")
def huge_tree(tmp_path_factory) -> Path:
    """More files and folders than a models folder holds (a home or system folder, scaled down)."""
    return _wide_tree(tmp_path_factory.mktemp("huge"), 20_500)


def test_a_folder_with_too_many_entries_is_refused_naming_the_folder(tmp_path):
    root = _wide_tree(tmp_path / "home", 1_200)
    with pytest.raises(InvalidInput) as refused:
        check_scan_bounds(root, ScanLimits(max_entries=1_000))
    assert refused.value.field == "folder" and str(root) in refused.value.message
    assert "more than 1000 files and folders" in refused.value.message


def test_a_folder_nesting_too_deep_is_refused(tmp_path):
    deep = tmp_path / "root" / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    with pytest.raises(InvalidInput, match="more than 3 levels deep"):
        check_scan_bounds(tmp_path / "root", ScanLimits(max_depth=3))
    assert check_scan_bounds(tmp_path / "root", ScanLimits(max_depth=4)) == 4


def test_a_folder_link_loop_is_walked_once(tmp_path):
    root = tmp_path / "models"
    (root / "sd").mkdir(parents=True)
    (root / "sd" / "model.safetensors").touch()
    os.symlink(root, root / "sd" / "loop")
    assert check_scan_bounds(root, ScanLimits(max_depth=3)) == 3  # sd, its file, the link itself


def test_the_walk_reports_progress_and_stops_on_cancel(huge_tree):
    progress = SilentProgress()
    progress.stop_requested = True
    with pytest.raises(Cancelled):
        check_scan_bounds(huge_tree, progress=progress)
    assert len(progress.reports) == 1 and progress.reports[0][1] == f"looking through {huge_tree}: 500 entries"


def test_the_server_refuses_a_huge_scan_and_runs_scans_as_cancellable_jobs(huge_tree, tmp_path):
    backend = start_backend(tmp_path / "data", env={"AVATAR_FOUNDRY_TEST_STEP_DELAY": "0.5"})
    try:
        with backend.client() as client:
            refused = client.post("/v1/models/scan", json={"folder": str(huge_tree)})
            assert refused.status_code == 422 and refused.json()["error"]["field"] == "folder"
            assert "more than 20000 files and folders" in refused.json()["error"]["message"]

            models = tmp_path / "models"
            models.mkdir()
            (models / "old.ckpt").write_bytes(b"not loaded")
            job = client.post("/v1/jobs", json={"kind": "scan-models", "params": {"folder": str(models)}}).json()
            done = wait_for_job(client, job["id"])
            assert done["state"] == "succeeded", done
            report = json.loads(client.get(f"/v1/jobs/{job['id']}/artifacts/scan.json").content)
            assert report["added"] == [] and "pickled weights" in report["skipped"][0]["reason"]

            long_scan = client.post("/v1/jobs", json={"kind": "scan-models", "params": {"folder": str(huge_tree)}}).json()
            wait_for_job(client, long_scan["id"], states=("running",),
                         condition=lambda job: job["stage"].startswith("looking through"))
            client.post(f"/v1/jobs/{long_scan['id']}/cancel")
            cancelled = wait_for_job(client, long_scan["id"])
            assert cancelled["state"] == "cancelled" and cancelled["error"]["code"] == protocol.CANCELLED
            assert client.get("/v1/health").json()["status"] == "ok"
    finally:
        backend.stop()
