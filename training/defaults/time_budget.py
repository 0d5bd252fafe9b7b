"""How a default's training reports progress and stops when ``train-defaults --minutes`` is spent."""

from __future__ import annotations

import time
from collections.abc import Callable

from backend.errors import Cancelled


class TimeBudgetSpent(Cancelled):
    """Raised through a trainer's progress once the build's time is up; trainers snapshot on a cancel first,
    so running the build again resumes."""

    def __init__(self) -> None:
        super().__init__("the build's --minutes are spent", "run train-defaults again to resume the training")


class BudgetedProgress:
    """A trainer's progress as one line per ``reports(stage)`` change (a trainer's own console progress prints
    a line per step), stopping at ``deadline`` (time.monotonic(); None: never)."""

    def __init__(self, say: Callable[[str], None], deadline: float | None, reports: Callable[[str], bool]) -> None:
        self._say = say
        self._deadline = deadline
        self._reports = reports
        self._last = ""

    def update(self, fraction: float, stage: str) -> None:
        if self.cancelled():
            raise TimeBudgetSpent
        if self._reports(stage) and stage != self._last:
            self._last = stage
            self._say(f"[{fraction:6.1%}] {stage}")

    def cancelled(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline


def deadline_after(minutes: float | None) -> float | None:
    return None if minutes is None else time.monotonic() + 60 * minutes
