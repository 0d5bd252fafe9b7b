"""Guarded, time-boxed sections of one benchmark run, written to disk as they finish.

GPU time is short and a run may be killed at its limit: every section catches its own failure
(recorded under the section as ``error``), stops measuring when its time box or the run's budget is
spent (recorded as ``skipped``), and the report is rewritten after every section. A watchdog thread
writes the report and ends the process if one section hangs past the run's hard deadline, naming it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from blender_addon.formats.files import atomic_write_json, atomic_write_text

HARD_DEADLINE_GRACE_S = 60.0
HARD_DEADLINE_GRACE_SHARE = 0.2
"""The watchdog ends a run min(60 s, 20% of its budget) past the budget."""
WATCHDOG_EXIT_CODE = 3


class TimeBoxSpent(Exception):
    """A section's time box (or the run's budget) ran out before a measurement started."""


@dataclass
class Budget:
    """Seconds left to a section: the smaller of its own box and what the run has left."""

    deadline: float

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def require(self, seconds: float, what: str) -> None:
        """Refuse to start ``what`` (expected to take ``seconds``) when it would overrun the box."""
        if self.left() < seconds:
            raise TimeBoxSpent(f"{what}: needs ~{seconds:.0f} s, {max(self.left(), 0):.0f} s left in the time box")


@dataclass
class Session:
    """One run's report (``report.json`` in ``out_dir``) and its clock."""

    out_dir: Path
    report: dict[str, Any]
    budget_s: float
    started: float = field(default_factory=time.monotonic)
    current: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.report.setdefault("sections", {})
        self.report["budget_s"] = self.budget_s
        self.save()
        threading.Thread(target=self._watchdog, name="bench-watchdog", daemon=True).start()

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.json"

    def run_left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def save(self) -> None:
        """report.json and summary.txt as they stand (also what a watchdog stop leaves)."""
        from .summary import summary_table

        with self._lock:
            self.report["elapsed_s"] = round(time.monotonic() - self.started, 1)
            atomic_write_json(self.report_path, self.report)
            atomic_write_text(self.out_dir / "summary.txt", summary_table(self.report) + "\n")

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.out_dir / name, text)

    @contextlib.contextmanager
    def section(self, name: str, box_s: float) -> Iterator[dict[str, Any]]:
        """``with session.section('eg3d', 90) as figures:`` fill ``figures``; failures are recorded, not raised."""
        figures: dict[str, Any] = {}
        self.report["sections"][name] = figures
        box = min(box_s, self.run_left())
        figures["time_box_s"] = round(box, 1)
        start = time.monotonic()
        self.current = name
        print(f"[bench gpu] {name}: up to {box:.0f} s ({self.run_left():.0f} s left in the run)", file=sys.stderr, flush=True)
        try:
            if box <= 5:
                raise TimeBoxSpent("the run's time budget is spent")
            yield figures
        except TimeBoxSpent as spent:
            figures["skipped"] = str(spent)
        except Exception as error:  # one failing section must not lose the others' figures
            figures["error"] = f"{type(error).__name__}: {error}"
            figures["traceback"] = traceback.format_exc(limit=8)[-3000:]
            traceback.print_exc()
        finally:
            figures["wall_s"] = round(time.monotonic() - start, 2)
            self.current = None
            _free_device_memory()
            self.save()

    def budget(self, box_s: float) -> Budget:
        return Budget(time.monotonic() + min(box_s, self.run_left()))

    def guarded(self, figures: dict[str, Any], key: str, measure: Callable[[], Any]) -> None:
        """One measurement inside a section: its value, or its failure, under ``key``; then save."""
        try:
            figures[key] = measure()
        except TimeBoxSpent as spent:
            figures[key] = {"skipped": str(spent)}
        except Exception as error:
            figures[key] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=6)[-2000:]}
            traceback.print_exc()
        _free_device_memory()
        self.save()

    def _watchdog(self) -> None:
        while True:
            time.sleep(2.0)
            grace = min(HARD_DEADLINE_GRACE_S, HARD_DEADLINE_GRACE_SHARE * self.budget_s)
            if self.run_left() < -grace:
                self.report["watchdog"] = f"the run passed its budget by {grace:.0f} s in section {self.current!r}; ended"
                self.save()
                print(f"[bench gpu] {self.report['watchdog']}", file=sys.stderr, flush=True)
                os._exit(WATCHDOG_EXIT_CODE)


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(call: Callable[[], Any], device, budget: Budget, warmup: int = 1, iterations: int = 5,
                     at_least: int = 1) -> dict[str, float]:
    """Mean seconds of ``call`` after ``warmup`` calls (the first one timed apart); stops early when the box runs out."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(warmup):
        call()
    synchronize(device)
    first = time.perf_counter() - start
    budget.require(first * at_least, "timed calls")
    times = []
    for index in range(iterations):
        if index >= at_least and budget.left() < (sum(times) / len(times)) * 1.5:
            break
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return {"s": sum(times) / len(times), "warmup_s": round(first, 3), "iterations": len(times)}
