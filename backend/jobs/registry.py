"""The registry of job kinds: name -> params schema -> function(params, context).

A module of a later feature registers its kind with ``@job_kind(...)`` and adds itself to
``BUILTIN_KIND_MODULES``; the server imports those modules once at start. The function does its
work through the context: it writes results into ``context.output_dir`` (atomically), reports
progress with ``context.progress.update(...)`` (which raises Cancelled after a cancel request),
and gets models through ``context.models`` so they stay loaded between jobs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInput
from ..model_cache import ModelCache
from ..progress import Progress

BUILTIN_KIND_MODULES: tuple[str, ...] = (
    "backend.jobs.echo_conditions",
    "backend.jobs.train_eg3d", "backend.jobs.generate_avatar",
    "backend.jobs.train_deferred",
    "backend.jobs.animate",
    "backend.jobs.train_style_prior",
    "backend.jobs.multiview",
    "backend.jobs.scan_models",
    "backend.jobs.train_nphm",
    "backend.jobs.fit_nphm",
)


class JobParams(BaseModel):
    """Base of every kind's params: unknown fields are refused, not ignored, values of the wrong
    type are refused, not converted ("128" for a number is a mistake worth naming), and NaN or
    infinite numbers are refused. Every number has bounds and every string, list and mapping a
    length limit (tests/test_job_params.py checks each kind's schema), so no request can ask for
    unbounded work or be stored and echoed back at any size."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


MAX_SEED = 2**31 - 1
MAX_TRAINING_STEPS = 10_000_000
"""Longest run a training job may ask for, in optimiser steps (far past any real run's length)."""

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="random seed")]
Reference = Annotated[str, Field(max_length=256)]
"""A reference to a model or a job's output: 'job:<id>' or a model-store name."""
Name = Annotated[str, Field(max_length=128)]
"""A short identifier: a view id, a control kind, a class name."""
Prompt = Annotated[str, Field(max_length=2000)]
"""Text for a text encoder (which reads far fewer tokens than this)."""


@dataclass
class JobContext:
    job_id: str
    output_dir: Path
    """Everything the job writes goes here; the server lists it as the job's artifacts."""
    inputs_dir: Path | None
    """The uploaded condition bundle, extracted, or None when the job had no upload."""
    progress: Progress
    models: ModelCache
    resolve: Callable[[str], Path]
    """Turns a reference from the params into a local path: 'job:<id>' (another job's output
    folder) or a model-store name. Raises InvalidInput / ModelMissing for anything else, so that
    request params never name arbitrary files."""
    device: Any = None


@dataclass(frozen=True)
class JobKind:
    name: str
    params: type[JobParams]
    run: Callable[[Any, JobContext], None]
    summary: str
    accepts_upload: bool = False
    requires_upload: bool = False


_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, params: type[JobParams], summary: str, accepts_upload: bool = False, requires_upload: bool = False):
    """Decorator registering ``function(params, context)`` as the job kind ``name``."""

    def register(function: Callable[[Any, JobContext], None]) -> Callable[[Any, JobContext], None]:
        if name in _KINDS and _KINDS[name].run is not function:
            raise RuntimeError(f"job kind {name!r} is registered twice")
        _KINDS[name] = JobKind(name, params, function, summary, accepts_upload or requires_upload, requires_upload)
        return function

    return register


def load_builtin_kinds() -> None:
    for module in BUILTIN_KIND_MODULES:
        importlib.import_module(module)


def get_kind(name: str) -> JobKind:
    load_builtin_kinds()
    if name not in _KINDS:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise InvalidInput(f"unknown job kind {name!r}", f"use one of: {known}", field="kind")
    return _KINDS[name]


def all_kinds() -> list[JobKind]:
    load_builtin_kinds()
    return [_KINDS[name] for name in sorted(_KINDS)]
