"""Provenance of imported results: what made them, as flat custom properties.

Stored on every imported object so that "Regenerate" and "Vary seed" can rebuild the request.
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "avatar_foundry_"


def provenance_properties(job: dict, extra: dict[str, Any] | None = None, folder: str | None = None) -> dict[str, Any]:
    """Custom properties (str/int/float values) of a finished job, its result's metadata, and the
    folder its artifacts were downloaded to (where "Vary seed" finds an uploaded reference again)."""
    params = job.get("params") or {}
    metadata = extra or {}
    models = sorted({str(value) for key, value in params.items() if key.endswith(("model", "checkpoint")) and value})
    seed = metadata.get("seed", params.get("seed"))
    properties: dict[str, Any] = {
        PREFIX + "job_id": str(job["id"]),
        PREFIX + "kind": str(job["kind"]),
        PREFIX + "params": json.dumps(params, sort_keys=True),
        PREFIX + "models": json.dumps(models),
    }
    if seed is not None:
        properties[PREFIX + "seed"] = int(seed)
    if metadata:
        properties[PREFIX + "metadata"] = json.dumps(metadata, sort_keys=True)
    if folder:
        properties[PREFIX + "result_folder"] = str(folder)
    return properties


def request_from_properties(properties: dict[str, Any], new_seed: int | None = None) -> tuple[str, dict]:
    """(kind, params) to submit again, optionally with another seed ("Vary seed")."""
    kind = str(properties[PREFIX + "kind"])
    params = json.loads(properties[PREFIX + "params"])
    if new_seed is not None:
        params["seed"] = int(new_seed)
    return kind, params
