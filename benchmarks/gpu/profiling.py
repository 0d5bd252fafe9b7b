"""The PyTorch profiler's top-15 table (by CUDA time; CPU time on a CPU) of a warm call, written to a file."""

from __future__ import annotations

from typing import Any, Callable

from .session import Session, synchronize

TOP_ROWS = 15


def profile_table(session: Session, file_name: str, call: Callable[[], Any], device, repeats: int, title: str) -> dict[str, Any]:
    """Profile ``repeats`` calls after one warm-up; the table goes to ``file_name`` in the output folder."""
    from torch.profiler import ProfilerActivity, profile

    call()
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(repeats):
            call()
        synchronize(device)
    events = profiler.key_averages()
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    try:
        table = events.table(sort_by=sort_by, row_limit=TOP_ROWS)
    except (AttributeError, KeyError, ValueError):  # newer profilers name it device_time_total
        sort_by = "device_time_total"
        table = events.table(sort_by=sort_by, row_limit=TOP_ROWS)
    path = session.write_text(file_name, f"{title}; {repeats} calls; sorted by {sort_by}\n\n{table}\n")
    return {"table_file": path.name, "sorted_by": sort_by, "calls": repeats, "top": _top_names(events, sort_by)}


def _top_names(events, sort_by: str) -> list[dict[str, Any]]:
    """The five operators with the most self time and their share of all self time, for the JSON (the file has the table)."""
    key = "self_cpu_time_total" if sort_by == "cpu_time_total" else "self_device_time_total"
    rows = [(event.key, float(getattr(event, key, 0.0) or 0.0)) for event in events]
    total = sum(value for _, value in rows) or 1.0
    rows.sort(key=lambda row: row[1], reverse=True)
    return [{"op": name, "self_ms": round(value / 1000, 2), "share": round(value / total, 3)} for name, value in rows[:5]]
