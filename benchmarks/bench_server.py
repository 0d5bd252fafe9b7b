"""The backend service through its real HTTP API: start-up, request latency, upload unpacking, and
the round trip of an echo-conditions job (submit a zipped bundle, run, list and download artifacts)."""

from __future__ import annotations

import io
import json
import statistics
import tempfile
import time
from pathlib import Path

HEALTH_REQUESTS = 200
ECHO_JOBS = 5
ECHO_VIEWS = 8
ECHO_RESOLUTION = 128
UNPACK_VIEWS = 16
UNPACK_RESOLUTION = 512


def run(device) -> dict:
    from tests.fixtures.server import start_backend, submit_bundle_job, wait_for_job, write_condition_bundle, zip_folder

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        figures = {"unpack_mb_per_s": _unpack_speed(root, write_condition_bundle, zip_folder)}
        start = time.perf_counter()
        backend = start_backend(root / "data", "--device", str(device))
        figures["startup_to_healthy_s"] = round(time.perf_counter() - start, 2)
        try:
            with backend.client() as client:
                figures["health_request_ms"] = _request_latency_ms(client)
                bundle = zip_folder(write_condition_bundle(root / "echo", views=ECHO_VIEWS, size=ECHO_RESOLUTION))
                figures["echo_job_round_trip_s"] = _echo_round_trip_s(client, bundle, submit_bundle_job, wait_for_job)
        finally:
            backend.stop()
    figures.update(echo_views=ECHO_VIEWS, echo_resolution=ECHO_RESOLUTION)
    return figures


def _unpack_speed(root: Path, write_condition_bundle, zip_folder) -> float:
    from backend.server.uploads import unpack_upload

    archive = zip_folder(write_condition_bundle(root / "large", views=UNPACK_VIEWS, size=UNPACK_RESOLUTION))
    start = time.perf_counter()
    unpack_upload(io.BytesIO(archive), root / "unpacked", 1 << 34, bundle_required=True)
    elapsed = time.perf_counter() - start
    unpacked = sum(path.stat().st_size for path in (root / "unpacked").rglob("*") if path.is_file())
    return round(unpacked / (1 << 20) / elapsed, 1)


def _request_latency_ms(client) -> float:
    timings = []
    for _ in range(HEALTH_REQUESTS):
        start = time.perf_counter()
        client.get("/v1/health").raise_for_status()
        timings.append(time.perf_counter() - start)
    return round(statistics.median(timings) * 1000, 2)


def _echo_round_trip_s(client, bundle: bytes, submit_bundle_job, wait_for_job) -> float:
    timings = []
    for _ in range(ECHO_JOBS):
        start = time.perf_counter()
        job_id = submit_bundle_job(client, bundle).json()["id"]
        job = wait_for_job(client, job_id, timeout=300)
        if job["state"] != "succeeded":
            raise RuntimeError(f"echo job failed: {json.dumps(job['error'])}")
        for artifact in client.get(f"/v1/jobs/{job_id}/artifacts").json()["artifacts"]:
            client.get(f"/v1/jobs/{job_id}/artifacts/{artifact['name']}").raise_for_status()
        timings.append(time.perf_counter() - start)
    return round(statistics.median(timings), 3)
