"""Job kind ``scan-models``: register the models a local folder holds, as a job with progress and cancel.

The same scan as ``POST /v1/models/scan`` and ``avatar-foundry models scan``, bounded in depth,
entries and time (``models.scan_bounds``); its report (what was added, what was skipped and why)
is the artifact ``scan.json``.
"""

from __future__ import annotations

from pydantic import Field

from blender_addon.formats.files import atomic_write_json

from .deferred_store import model_store
from .registry import JobContext, JobParams, job_kind


class ScanModelsParams(JobParams):
    folder: str = Field(min_length=1, max_length=4096, description="a local folder of models (A1111, ComfyUI, a Hugging Face cache...)")


@job_kind("scan-models", ScanModelsParams, "register every base model, ControlNet and LoRA a local folder holds")
def scan_models_job(params: ScanModelsParams, context: JobContext) -> None:
    from ..models.discovery import scan_folder
    from ..models.scan_bounds import check_scan_bounds

    store = model_store(context)
    entries = check_scan_bounds(params.folder, progress=context.progress)
    context.progress.update(0.5, f"recognising the models among {entries} entries")
    report = scan_folder(store, params.folder)
    atomic_write_json(context.output_dir / "scan.json", report.to_json())
    context.progress.update(1.0, f"{len(report.added)} model(s) added, {len(report.skipped)} skipped")
