"""Progress and cancellation for long work, shared by the CLI, the job server and trainers.

Long-running functions take a ``Progress`` and call ``update(fraction, stage)`` at each step; the
call raises ``Cancelled`` when the user has asked to stop, so cancellation needs no extra checks.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from .errors import Cancelled


class Progress(Protocol):
    def update(self, fraction: float, stage: str) -> None:
        """Report overall completion in [0, 1] and the current stage; raises Cancelled to stop."""

    def cancelled(self) -> bool:
        """True once the user asked to stop (for loops that want to wind down themselves)."""


def stop_if_cancelled(progress: Progress, fraction: float) -> None:
    """For the phase boundaries inside one long step (a GAN's G and D phases, a validation render):
    once a stop was asked for, raise through ``progress.update`` (Cancelled, or what the progress
    raises on shutdown), so a cancel takes effect within a phase, not a whole step later."""
    if progress.cancelled():
        progress.update(fraction, "stopping")


class EtaEstimator:
    """Seconds remaining, from the time since the first report and the fraction done."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._start: float | None = None
        self._start_fraction = 0.0

    def eta(self, fraction: float) -> float | None:
        now = self._clock()
        if self._start is None:
            self._start, self._start_fraction = now, fraction
            return None
        done = fraction - self._start_fraction
        if done <= 1e-6:
            return None
        return max(0.0, (now - self._start) * (1.0 - fraction) / done)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ConsoleProgress:
    """Prints ``[ 42%] stage  ETA 01:23`` lines; Ctrl-C cancels through KeyboardInterrupt."""

    def __init__(self, stream: TextIO = sys.stderr, min_interval: float = 0.5) -> None:
        self._stream = stream
        self._min_interval = min_interval
        self._last_print = 0.0
        self._last_stage = ""
        self._eta = EtaEstimator()

    def update(self, fraction: float, stage: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        eta = self._eta.eta(fraction)
        now = time.monotonic()
        if stage != self._last_stage or now - self._last_print >= self._min_interval or fraction >= 1.0:
            self._stream.write(f"[{fraction * 100:5.1f}%] {stage}  ETA {format_eta(eta)}\n")
            self._stream.flush()
            self._last_print, self._last_stage = now, stage

    def cancelled(self) -> bool:
        return False


class SilentProgress:
    """For library calls and tests that need no reporting; can still be cancelled."""

    def __init__(self) -> None:
        self.stop_requested = False
        self.reports: list[tuple[float, str]] = []

    def update(self, fraction: float, stage: str) -> None:
        self.reports.append((fraction, stage))
        if self.stop_requested:
            raise Cancelled()

    def cancelled(self) -> bool:
        return self.stop_requested


class ScaledProgress:
    """Maps a sub-task's [0, 1] onto [start, end] of a parent's progress."""

    def __init__(self, parent: Progress, start: float, end: float) -> None:
        self._parent, self._start, self._end = parent, start, end

    def update(self, fraction: float, stage: str) -> None:
        self._parent.update(self._start + (self._end - self._start) * min(max(fraction, 0.0), 1.0), stage)

    def cancelled(self) -> bool:
        return self._parent.cancelled()
