"""The FastAPI application of ``avatar-foundry serve``: the HTTP API of issue 2 over the job store.

The app only queues and reports; jobs run in the worker thread. See README "HTTP API" for the contract.
The event loop never waits for the database: store calls of async endpoints run in threads of their
own small pool (``QUICK_THREADS``), apart from anyio's default pool, which file downloads use, and
from model-folder scans, which have a pool of their own, so that long work cannot starve health,
listing, getting and cancelling jobs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from functools import partial
from typing import Any, Callable, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, JSONResponse, StreamingResponse

from blender_addon.formats import protocol
from blender_addon.formats.condition_bundle import check_relative_path
from blender_addon.formats.errors import FormatError

from .. import __version__
from ..data_dir import DataDir
from ..device import describe, pick_device
from ..errors import AvatarFoundryError, DataDirUnwritable, InvalidInput, NotFound, ServerBusy
from ..job_estimates import Machine, check_job_fits, estimate_job, fit_unset_params, this_machine
from ..jobs.registry import JobKind, all_kinds, get_kind
from ..model_cache import ModelCache
from .auth import AccessGuard
from .body_limit import BodySizeLimit
from .config import ServerConfig
from .error_mapping import PayloadTooLarge, error_response, invalid_input_from_validation, to_foundry_error
from .events import EventStreams, StoreChanges
from .faults import step_delay_from_environment, write_fault_from_environment
from .job_recovery import open_job_store
from .job_store import Job, JobStore, new_job_id
from .references import ReferenceResolver
from .uploads import unpack_upload
from .worker import JobWorker

log = logging.getLogger("avatar_foundry.server")
_HTTP_STATUS_CODES = {404: protocol.NOT_FOUND, 409: protocol.CONFLICT, 413: protocol.PAYLOAD_TOO_LARGE}
MAX_JSON_REQUEST_BYTES = 8 << 20
"""Largest job request sent as plain JSON (the largest params, a full style code, take ~5 MiB)."""
QUICK_THREADS = 8
"""Threads for the API's own database calls (they queue on the store's one lock anyway)."""
SCAN_THREADS = 2
"""Model-folder scans at once (POST /v1/models/scan); more are refused with 503 BUSY."""
MAX_LIST_JOBS = 500
MAX_LIST_BYTES = 1 << 20
"""A page of GET /v1/jobs holds at most this many jobs and bytes; ``next_before`` continues it."""
T = TypeVar("T")


class JobRequest(BaseModel):
    """The body of POST /v1/jobs (or its multipart ``request`` field)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=64)
    params: dict[str, Any] = Field({}, max_length=256)


class ScanRequest(BaseModel):
    """The body of POST /v1/models/scan."""

    model_config = ConfigDict(extra="forbid")
    folder: str = Field(max_length=4096)


class EstimateRequest(BaseModel):
    """The body of POST /v1/jobs/estimate: a job request, and how many renders its bundle will hold."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=64)
    params: dict[str, Any] = Field({}, max_length=256)
    renders: int = Field(1, ge=1, le=1_000_000)


class JobStillActive(AvatarFoundryError):
    code = protocol.CONFLICT
    http_status = 409


@dataclass
class Backend:
    """Everything the endpoints share, alive between the app's start and stop."""

    config: ServerConfig
    data_dir: DataDir
    store: JobStore
    models: ModelCache
    worker: JobWorker
    resolver: ReferenceResolver
    device: Any
    streams: EventStreams
    quick_limiter: anyio.CapacityLimiter
    machine: Machine
    scan_limiter: anyio.CapacityLimiter

    async def quick(self, function: Callable[..., T], *arguments: Any) -> T:
        """Run a short blocking call (the database) off the event loop, on the API's own threads."""
        return await anyio.to_thread.run_sync(partial(function, *arguments), limiter=self.quick_limiter)


def create_app(config: ServerConfig) -> FastAPI:
    """The app; the job store is opened (checked, rebuilt if damaged) here, before serving, so a
    database that cannot be used stops the start with one line."""
    data_dir = DataDir.at(config.data_dir)
    data_dir.create()
    token = data_dir.ensure_token()
    store = open_job_store(data_dir, write_fault=write_fault_from_environment())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        backend = start_backend(config, data_dir, asyncio.get_running_loop(), store)
        app.state.backend = backend
        try:
            yield
        finally:
            backend.worker.stop()
            backend.store.close()

    app = FastAPI(title="Avatar Foundry backend", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=f"{protocol.API_PREFIX}/openapi.json")
    _add_error_handlers(app)
    _add_routes(app)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(AccessGuard, token=token, allow_remote=config.allow_remote)
    return app


def start_backend(config: ServerConfig, data_dir: DataDir, loop: asyncio.AbstractEventLoop, store: JobStore) -> Backend:
    """Record jobs a stopped backend left running as interrupted, remove job folders without a
    record, start the worker."""
    interrupted = store.mark_interrupted()
    if interrupted:
        log.warning("%d job(s) were running when the backend last stopped; marked failed (interrupted)", interrupted)
    orphans = data_dir.remove_orphan_job_folders(store.job_ids())
    if orphans:
        log.warning("removed %d job folder(s) without a job record (left by a backend that stopped mid-upload)", orphans)
    all_kinds()
    device = pick_device(config.device)
    idle = config.idle_unload_seconds if config.idle_unload_seconds > 0 else None
    models = ModelCache(idle_seconds=idle)
    resolver = ReferenceResolver(data_dir, store)
    worker = JobWorker(store, data_dir, models, device, resolver, step_delay=step_delay_from_environment(),
                       idle_check_seconds=min(5.0, idle or 5.0))
    worker.start()
    quick_limiter = anyio.CapacityLimiter(QUICK_THREADS)
    streams = EventStreams(store, StoreChanges(store, loop), config.max_event_streams, quick_limiter)
    return Backend(config, data_dir, store, models, worker, resolver, device, streams, quick_limiter, this_machine(device),
                   anyio.CapacityLimiter(SCAN_THREADS))


def _backend(request: Request) -> Backend:
    return request.app.state.backend


async def _require_job(backend: Backend, job_id: str) -> Job:
    job = await backend.quick(backend.store.get, job_id)
    if job is None:
        raise NotFound(f"there is no job {job_id[:64]!r}", "list the jobs with GET /v1/jobs", field="id")
    return job


def _add_routes(app: FastAPI) -> None:
    prefix = protocol.API_PREFIX

    @app.get(f"{prefix}/health")
    async def health(request: Request) -> dict:
        """Answered on the event loop itself: no database, no thread pool."""
        backend = _backend(request)
        return {
            "status": "ok",
            "version": __version__,
            "protocol_version": protocol.PROTOCOL_VERSION,
            **describe(backend.device),
            "diffusers": _package_version("diffusers"),
            "job_kinds": [kind.name for kind in all_kinds()],
            "data_dir": str(backend.data_dir.root),
        }

    @app.post(f"{prefix}/jobs", status_code=201)
    async def submit_job(request: Request) -> JSONResponse:
        backend = _backend(request)
        raw_request, bundle = await _read_submission(request)
        try:
            job = await _create_job(backend, raw_request, bundle)
        finally:
            if bundle is not None:
                await bundle.close()
        backend.worker.wake()
        return JSONResponse(job.to_json(), status_code=201)

    @app.post(f"{prefix}/jobs/estimate")
    async def estimate(request: Request, body: EstimateRequest) -> dict:
        """Memory and time the job would take here, and whether it would be accepted (the same
        check a submission gets), without submitting it; ``params`` are the params it would run
        with (unset sizes chosen to fit)."""
        backend = _backend(request)
        kind = get_kind(body.kind)
        try:
            params = kind.params.model_validate(body.params)
        except ValidationError as error:
            raise invalid_input_from_validation(error.errors(), "params") from None
        return await backend.quick(describe_estimate, backend, kind.name, params, body.renders)

    @app.get(f"{prefix}/jobs")
    async def list_jobs(request: Request, limit: int = 200, before: int | None = None) -> dict:
        """Newest first, without params (GET /v1/jobs/{id} has them); a page holds at most
        ``MAX_LIST_JOBS`` jobs and ``MAX_LIST_BYTES`` bytes, and ``next_before`` (or null) is the
        ``before`` of the next page."""
        backend = _backend(request)
        jobs = await backend.quick(backend.store.list, max(1, min(limit, MAX_LIST_JOBS)), before)
        return list_page(jobs, limit)

    @app.get(f"{prefix}/jobs/{{job_id}}")
    async def show_job(request: Request, job_id: str) -> dict:
        return (await _require_job(_backend(request), job_id)).to_json()

    @app.post(f"{prefix}/jobs/{{job_id}}/cancel")
    async def cancel_job(request: Request, job_id: str) -> dict:
        backend = _backend(request)
        await _require_job(backend, job_id)
        return (await backend.quick(backend.worker.cancel, job_id)).to_json()

    @app.delete(f"{prefix}/jobs/{{job_id}}")
    def delete_job(request: Request, job_id: str) -> dict:
        """Remove a finished job and its folder (inputs and artifacts) to free disk space. The record
        goes only once the folder is gone, so a folder that cannot be removed is reported and the
        delete can be repeated."""
        backend = _backend(request)
        job = backend.store.get(job_id)
        if job is None:
            raise NotFound(f"there is no job {job_id[:64]!r}", "list the jobs with GET /v1/jobs", field="id")
        if not job.finished:
            raise JobStillActive(f"job {job_id} has not finished", "cancel it first, then delete it", field="id")
        failures = backend.data_dir.remove_job_folder(job_id)
        if failures:
            raise DataDirUnwritable(
                f"could not remove {len(failures)} item(s) of {backend.data_dir.job_dir(job_id)}, first {failures[0]}",
                "make the job's folder writable for the user running the backend, then delete the job again", field="id")
        backend.store.delete_finished(job_id)
        return {"deleted": job_id}

    @app.get(f"{prefix}/jobs/{{job_id}}/events")
    async def follow_job(request: Request, job_id: str) -> StreamingResponse:
        backend = _backend(request)
        await _require_job(backend, job_id)
        return backend.streams.open(job_id)

    @app.get(f"{prefix}/jobs/{{job_id}}/artifacts")
    async def list_artifacts(request: Request, job_id: str) -> dict:
        backend = _backend(request)
        await _require_job(backend, job_id)
        return {"artifacts": await backend.quick(list_artifact_files, backend.data_dir.output_dir(job_id))}

    @app.get(f"{prefix}/jobs/{{job_id}}/artifacts/{{name:path}}")
    async def download_artifact(request: Request, job_id: str, name: str) -> FileResponse:
        backend = _backend(request)
        await _require_job(backend, job_id)
        return FileResponse(artifact_path(backend.data_dir.output_dir(job_id), name))

    @app.post(f"{prefix}/unload")
    def unload(request: Request) -> dict:
        return {"unloaded": _backend(request).models.clear()}

    @app.get(f"{prefix}/models")
    def list_models(request: Request) -> dict:
        entries = _backend(request).resolver.models.list()
        return {"models": [{"name": e.name, "role": e.role, "path": str(e.path), "format": e.format} for e in entries]}

    @app.post(f"{prefix}/models/scan")
    async def scan_models(request: Request, body: ScanRequest) -> dict:
        """Register the models a local folder holds (the add-on's "models folder" preference),
        bounded in depth, entries and time, on threads of its own; the ``scan-models`` job kind
        does the same with progress and cancel."""
        backend = _backend(request)
        if backend.scan_limiter.borrowed_tokens >= backend.scan_limiter.total_tokens:
            raise ServerBusy(f"{SCAN_THREADS} model-folder scans are running already",
                             "wait for them to finish, or submit a 'scan-models' job")
        return await anyio.to_thread.run_sync(scan_bounded, backend.resolver.models, body.folder, limiter=backend.scan_limiter)


async def _read_submission(request: Request) -> tuple[bytes | str, UploadFile | None]:
    """The job request JSON and the uploaded bundle (multipart), or the JSON body alone."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _read_json_body(request), None
    try:
        form = await request.form(max_files=1, max_fields=4)
    except StarletteHTTPException as error:  # Starlette's refusal of a malformed or oversized form
        raise InvalidInput(f"the multipart form was refused: {error.detail}",
                           "send one text field 'request' and at most one file 'bundle'", field="bundle") from None
    unknown = sorted(set(form.keys()) - {"request", "bundle"})
    if unknown:
        raise InvalidInput(f"unknown form field {unknown[0]!r}", "send only 'request' (JSON text) and 'bundle' (a zip file)", field=unknown[0])
    raw_request = form.get("request")
    bundle = form.get("bundle")
    if not isinstance(raw_request, str):
        raise InvalidInput("the multipart form has no text field 'request'",
                           'add a field request=\'{"kind": ..., "params": {...}}\'', field="request")
    if bundle is not None and not isinstance(bundle, UploadFile):
        raise InvalidInput("'bundle' must be a file (a zip of the condition bundle folder)", field="bundle")
    return raw_request, bundle


async def _read_json_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_REQUEST_BYTES:
            raise PayloadTooLarge(f"the job request is larger than {MAX_JSON_REQUEST_BYTES >> 20} MiB",
                                  "send only the params the job needs; upload files as the multipart 'bundle'", field="request")
    return bytes(body)


async def _create_job(backend: Backend, raw_request: bytes | str, bundle: UploadFile | None) -> Job:
    try:
        job_request = JobRequest.model_validate_json(raw_request or b"{}")
    except ValidationError as error:
        raise _request_error(error) from None
    kind = get_kind(job_request.kind)
    try:
        params = kind.params.model_validate(job_request.params)
    except ValidationError as error:
        raise invalid_input_from_validation(error.errors(), "params") from None
    _check_upload_allowed(kind, bundle)
    job_id = new_job_id()
    try:
        renders = 1
        if bundle is not None:
            unpacked = await anyio.to_thread.run_sync(unpack_upload, bundle.file, backend.data_dir.inputs_dir(job_id),
                                                      backend.config.max_extracted_bytes, kind.requires_upload)
            renders = len(unpacked.renders) if unpacked is not None else 1
        params = await backend.quick(fitted_params, backend, kind.name, params, renders)
        return await backend.quick(backend.store.add, job_id, kind.name, params.model_dump(mode="json"), bundle is not None)
    except BaseException:
        shutil.rmtree(backend.data_dir.job_dir(job_id), ignore_errors=True)
        raise


def scan_bounded(store: Any, folder: str) -> dict:
    from ..models.discovery import scan_folder
    from ..models.scan_bounds import check_scan_bounds

    check_scan_bounds(folder)
    return scan_folder(store, folder).to_json()


def fitted_params(backend: Backend, kind: str, params: Any, renders: int) -> Any:
    """The params the job runs with (unset sizes chosen to fit this machine); InvalidInput naming
    the param when the job cannot fit this machine's memory or time."""
    fitted = fit_unset_params(kind, params, backend.machine, renders, backend.resolver)
    check_job_fits(kind, fitted, backend.machine, renders, backend.resolver)
    return fitted


def describe_estimate(backend: Backend, kind: str, params: Any, renders: int) -> dict:
    """The answer of POST /v1/jobs/estimate."""
    fitted = fit_unset_params(kind, params, backend.machine, renders, backend.resolver)
    estimate = estimate_job(kind, fitted, backend.machine, renders, backend.resolver)
    problem = None
    try:
        check_job_fits(kind, fitted, backend.machine, renders, backend.resolver)
    except InvalidInput as refusal:
        problem = refusal.to_json()
    figures = estimate.to_json(backend.machine) if estimate is not None else {"fits": True}
    return {"kind": kind, **figures, "problem": problem, "params": fitted.model_dump(mode="json")}


def _request_error(error: ValidationError) -> InvalidInput:
    first = error.errors()[0]
    if first.get("type") == "json_invalid":
        return InvalidInput(f"the request is not valid JSON ({first.get('msg')})",
                            'send {"kind": "...", "params": {...}}', field="request")
    return invalid_input_from_validation(error.errors())


def _check_upload_allowed(kind: JobKind, bundle: UploadFile | None) -> None:
    if bundle is not None and not kind.accepts_upload:
        raise InvalidInput(f"job kind {kind.name!r} takes no uploaded bundle", "send the request without the 'bundle' file", field="bundle")
    if bundle is None and kind.requires_upload:
        raise InvalidInput(f"job kind {kind.name!r} needs an uploaded condition bundle",
                           "send multipart/form-data with a 'bundle' file: a zip of the bundle folder", field="bundle")


def list_page(jobs: list[Job], limit: int) -> dict:
    """The job summaries that fit one page, and the ``before`` of the next page (None at the end)."""
    page, size = [], 0
    for job in jobs:
        summary = job.summary_json()
        size += len(json.dumps(summary))
        if page and size > MAX_LIST_BYTES:
            break
        page.append(summary)
    more = len(page) < len(jobs) or len(jobs) == max(1, min(limit, MAX_LIST_JOBS))
    return {"jobs": page, "next_before": jobs[len(page) - 1].seq if page and more else None}


def list_artifact_files(output_dir: Path) -> list[dict]:
    """Finished files under ``output_dir`` (relative POSIX names), skipping in-progress temp files."""
    if not output_dir.is_dir():
        return []
    root = output_dir.resolve()
    found = []
    for path in sorted(output_dir.rglob("*")):
        relative = path.relative_to(output_dir)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            continue
        found.append({"name": relative.as_posix(), "size": path.stat().st_size})
    return found


def artifact_path(output_dir: Path, name: str) -> Path:
    """The file ``name`` inside ``output_dir``; names that could leave it are refused."""
    try:
        relative = check_relative_path(name, "name")
    except FormatError as error:
        raise InvalidInput(error.message, "use a name from GET /v1/jobs/{id}/artifacts", field="name") from None
    path = output_dir.joinpath(*relative.parts)
    hidden = any(part.startswith(".") for part in relative.parts)
    if hidden or not path.is_file() or not path.resolve().is_relative_to(output_dir.resolve()):
        raise NotFound(f"the job has no artifact {name!r}", "use a name from GET /v1/jobs/{id}/artifacts", field="name")
    return path


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AvatarFoundryError)
    async def foundry_error(request: Request, error: AvatarFoundryError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(FormatError)
    async def format_error(request: Request, error: FormatError) -> JSONResponse:
        return error_response(InvalidInput.from_format_error(error))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(invalid_input_from_validation(list(error.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        problem = AvatarFoundryError(str(error.detail), "check the method and path against the HTTP API in the README")
        problem.code = _HTTP_STATUS_CODES.get(error.status_code, protocol.INVALID_INPUT)
        problem.http_status = error.status_code
        return error_response(problem)

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, error: Exception) -> JSONResponse:
        """A full disk or an unwritable data dir: answered (507) like any refusal, not as a crash."""
        return error_response(to_foundry_error(error))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(to_foundry_error(error))
