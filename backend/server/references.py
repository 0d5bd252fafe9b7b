"""What ``context.resolve(ref)`` does: job params name outputs and models, never raw file paths.

``job:<id>`` is another job's output folder (only once that job succeeded); any other reference
is a name in the model store (``<data dir>/models``).
"""

from __future__ import annotations

from pathlib import Path

from ..data_dir import DataDir
from ..errors import InvalidInput, ModelMissing
from ..models.store import ModelStore
from .job_store import JobStore

JOB_REFERENCE_PREFIX = "job:"


class ReferenceResolver:
    """The ``context.resolve`` the server gives jobs; ``.models`` is the server's ModelStore, for
    jobs that hand a model-name resolver on to library code."""

    def __init__(self, data_dir: DataDir, store: JobStore) -> None:
        self._data_dir = data_dir
        self._store = store
        self.models = ModelStore(data_dir.models_dir)

    def __call__(self, reference: str) -> Path:
        if not isinstance(reference, str) or not reference:
            raise InvalidInput(f"{reference!r} is not a reference", "name a model from GET /v1/models, or 'job:<id>'")
        if reference.startswith(JOB_REFERENCE_PREFIX):
            return self._job_output(reference[len(JOB_REFERENCE_PREFIX):])
        return self.models.resolve(reference).path

    def _job_output(self, job_id: str) -> Path:
        job = self._store.get(job_id)
        if job is None:
            raise ModelMissing(f"there is no job {job_id!r}", "use the id of a finished job from GET /v1/jobs")
        if job.state != "succeeded":
            raise InvalidInput(f"job {job_id} is {job.state}, so its output cannot be used",
                               "wait until it has succeeded, or pick another job")
        return self._data_dir.output_dir(job_id)
