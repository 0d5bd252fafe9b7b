"""``avatar-foundry jobs``: list, show, cancel and fetch the jobs of a running backend."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

from blender_addon.formats.errors import FormatError

from ..progress import format_eta


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jobs", help="list, show, cancel and fetch jobs of a running backend")
    parser.add_argument("--url", help="the backend's URL (default: from <data dir>/server.json, else http://127.0.0.1:8765)")
    parser.add_argument("--data-dir", type=Path, help="the backend's data dir, where the token is (default: per-user)")
    parser.add_argument("--token-file", type=Path,
                        help="a file holding the bearer token (default: $AVATAR_FOUNDRY_TOKEN, else <data dir>/token)")
    parser.add_argument("--token", help="the bearer token itself; discouraged: every local user sees it in the process list")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    submit = actions.add_parser("submit", help="queue a job (see GET /v1/health for the kinds)")
    submit.add_argument("kind")
    submit.add_argument("--params", default="{}", help="the job's params as a JSON object")
    submit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="one param (VALUE is read as JSON, else as text); repeatable, overrides --params")
    submit.add_argument("--bundle", type=Path,
                        help="upload: a condition bundle folder, a .zip, or a single file (e.g. a reference image)")
    submit.add_argument("--follow", action="store_true", help="then print progress until the job ends")
    submit.add_argument("--reconnect", action="store_true", help="with --follow: wait for a stopped backend to start again")
    submit.set_defaults(func=submit_job)
    listing = actions.add_parser("list", help="jobs, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print the job objects as JSON")
    listing.set_defaults(func=list_jobs)
    show = actions.add_parser("show", help="one job as JSON")
    show.add_argument("id")
    show.set_defaults(func=show_job)
    cancel = actions.add_parser("cancel", help="cancel a queued job now, a running one at its next step")
    cancel.add_argument("id")
    cancel.set_defaults(func=cancel_job)
    follow = actions.add_parser("follow", help="print a job's progress as it changes, until it ends")
    follow.add_argument("id")
    follow.add_argument("--reconnect", action="store_true",
                        help="when the backend stops or dies, wait for it to start again and go on following")
    follow.set_defaults(func=follow_job)
    delete = actions.add_parser("delete", help="remove a finished job with its inputs and artifacts")
    delete.add_argument("id")
    delete.set_defaults(func=delete_job)
    fetch = actions.add_parser("fetch", help="download every artifact of a job into DIR")
    fetch.add_argument("id")
    fetch.add_argument("dir", type=Path)
    fetch.set_defaults(func=fetch_artifacts)


BACKEND_GONE_EXIT = 3
"""``jobs follow`` exit status when the backend went away before the job ended."""
RECONNECT_SECONDS = 2.0


def _client(args: argparse.Namespace):
    from ..server.client import BackendClient

    if args.token:
        print("warning: --token is visible to every user of this computer (ps); use --token-file or "
              "AVATAR_FOUNDRY_TOKEN instead", file=sys.stderr)
    return BackendClient.locate(args.url, args.data_dir, args.token, args.token_file)


def _job_path(args: argparse.Namespace) -> str:
    """The job's URL path, its id escaped (an id is typed by the user)."""
    return f"/jobs/{quote(args.id, safe='')}"


def submit_job(args: argparse.Namespace) -> int:
    client = _client(args)
    request = json.dumps({"kind": args.kind, "params": job_params(args.params, args.param)})
    if args.bundle is None:
        job = client.job("/jobs", client.post("/jobs", json.loads(request)))
    else:
        job = client.job("/jobs", client.post_multipart("/jobs", {"request": request},
                                                        {"bundle": ("bundle.zip", upload_zip(args.bundle), "application/zip")}))
    print(describe_job(job), flush=True)
    if args.follow:
        args.id = job["id"]
        return follow_job(args)
    return 0


def job_params(params_json: str, assignments: list[str]) -> dict:
    """``--params`` JSON overlaid with each ``--param NAME=VALUE``."""
    try:
        params = json.loads(params_json)
    except json.JSONDecodeError as error:
        raise FormatError("--params", f"is not valid JSON ({error})", 'e.g. --params \'{"seed": 3}\'') from None
    if not isinstance(params, dict):
        raise FormatError("--params", "must be a JSON object")
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        if not separator or not name:
            raise FormatError("--param", f"{assignment!r} is not NAME=VALUE")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def upload_zip(path: Path) -> bytes:
    """What ``--bundle`` uploads: a bundle folder zipped (checked first), a .zip as is, or one file zipped."""
    from blender_addon.core.bundle_zip import zip_bundle

    if path.is_dir():
        return zip_bundle(path)
    if not path.is_file():
        raise FormatError("--bundle", f"{path} does not exist")
    if path.suffix.lower() == ".zip":
        return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, path.name)
    return buffer.getvalue()


def list_jobs(args: argparse.Namespace) -> int:
    client = _client(args)
    path = f"/jobs?limit={max(1, args.limit)}"
    answer = client.get(path)
    if not isinstance(answer.get("jobs"), list):
        raise client.malformed(path, "an object without a 'jobs' list")
    jobs = [client.job(path, job) for job in answer["jobs"]]
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    if not jobs:
        print("no jobs yet")
    for job in jobs:
        print(describe_job(job))
    return 0


def describe_job(job: dict) -> str:
    """One line: id, kind, state, percent, stage and ETA (or the error code of a failed job)."""
    line = f"{job['id']}  {job['kind']:<20} {job['state']:<10} {job['progress'] * 100:5.1f}%  {job['stage']}"
    if job["state"] == "running":
        line += f"  ETA {format_eta(job['eta_seconds'])}"
    if job["error"]:
        line += f"  [{job['error']['code']}] {job['error']['message']}"
    return line


def show_job(args: argparse.Namespace) -> int:
    client = _client(args)
    print(json.dumps(client.job(_job_path(args), client.get(_job_path(args))), indent=2))
    return 0


def cancel_job(args: argparse.Namespace) -> int:
    client = _client(args)
    print(describe_job(client.job(_job_path(args), client.post(_job_path(args) + "/cancel"))))
    return 0


def follow_job(args: argparse.Namespace) -> int:
    """Exit 0 when the job succeeded, 1 when it failed or was cancelled, 3 when the backend went
    away first (after saying so and how to go on following); ``--reconnect`` waits for it instead."""
    from ..server.client import BackendGone

    job = None
    while True:
        try:
            for job in _client(args).events(_job_path(args) + "/events"):
                print(describe_job(job), flush=True)
            if job is not None and job["state"] in ("succeeded", "failed", "cancelled"):
                return 0 if job["state"] == "succeeded" else 1
            went_away = f"the backend stopped while job {args.id} was {job['state'] if job else 'unknown'}"
        except BackendGone as error:
            went_away = f"{error.message} while following job {args.id}"
        if not getattr(args, "reconnect", False):
            print(f"{went_away}; once it runs again, go on with: avatar-foundry jobs follow {args.id} "
                  "(--reconnect waits for it)", file=sys.stderr)
            return BACKEND_GONE_EXIT
        print(f"{went_away}; waiting for it to start again (Ctrl-C stops waiting)", file=sys.stderr)
        _wait_for_backend(args)


def _wait_for_backend(args: argparse.Namespace) -> None:
    """Until a backend answers health again (its URL may have changed: server.json is re-read)."""
    from ..server.client import RemoteError

    while True:
        time.sleep(RECONNECT_SECONDS)
        try:
            _client(args).get("/health")
            return
        except RemoteError:
            continue


def delete_job(args: argparse.Namespace) -> int:
    answer = _client(args).delete(_job_path(args))
    print(f"deleted job {answer.get('deleted', args.id)}")
    return 0


def fetch_artifacts(args: argparse.Namespace) -> int:
    from blender_addon.formats.condition_bundle import check_relative_path

    from ..server.client import quote_name

    client = _client(args)
    path = _job_path(args) + "/artifacts"
    artifacts = client.get(path).get("artifacts")
    if not isinstance(artifacts, list) or not all(_is_artifact(artifact) for artifact in artifacts):
        raise client.malformed(path, "no list of artifacts (each a name and a size)")
    for artifact in artifacts:
        relative = check_relative_path(artifact["name"], "artifacts[].name")
        destination = args.dir.joinpath(*relative.parts)
        client.download(_job_path(args) + f"/artifacts/{quote_name(artifact['name'])}", destination, artifact["size"])
        print(f"{destination}  ({destination.stat().st_size} bytes)")
    if not artifacts:
        print(f"job {args.id} has no artifacts yet")
    return 0


def _is_artifact(artifact) -> bool:
    return (isinstance(artifact, dict) and isinstance(artifact.get("name"), str) and "\x00" not in artifact["name"]
            and isinstance(artifact.get("size"), int) and not isinstance(artifact.get("size"), bool))
