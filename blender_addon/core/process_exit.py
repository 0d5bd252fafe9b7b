"""Why the backend process ended, in one line the panel shows: its exit code or the signal that
killed it, "out of memory" when the kernel's OOM killer did it, and the cause its log names.

What can be known: a POSIX child killed by a signal has a negative return code (-9: SIGKILL). The
kernel's OOM killer sends SIGKILL, and so can a person or another program; Linux counts its OOM
kills in /proc/vmstat (``oom_kill``, readable by every user), so a SIGKILL while that count rose is
reported as out of memory, naming that evidence. Elsewhere a SIGKILL is reported as a kill, which
memory pressure is the most common cause of."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from .backend_log import explain_log, read_tail

VMSTAT = Path("/proc/vmstat")


@dataclass(frozen=True)
class ExitReport:
    message: str
    out_of_memory: bool
    log_tail: list[str]


def oom_kill_count(vmstat: Path = VMSTAT) -> int | None:
    """The kernel's count of OOM kills since boot (Linux 4.13+), or None where it is not kept."""
    try:
        for line in vmstat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def describe_exit(returncode: int, log_path: Path | None, oom_kills_before: int | None, oom_kills_after: int | None) -> ExitReport:
    tail = read_tail(log_path) if log_path is not None else []
    if returncode < 0:
        name = _signal_name(-returncode)
        killed = f"the backend was killed by {name} (signal {-returncode})"
        if -returncode == getattr(signal, "SIGKILL", 9):
            if oom_kills_before is not None and oom_kills_after is not None and oom_kills_after > oom_kills_before:
                return ExitReport(f"{killed}: out of memory (the kernel's out-of-memory killer ended "
                                  f"{oom_kills_after - oom_kills_before} process(es) meanwhile); use a smaller preset or "
                                  "resolution, close other programs, then press Start", True, tail)
            return ExitReport(f"{killed}, by the system or another program (most often for lack of memory); "
                              "press Start to run it again", False, tail)
        return ExitReport(f"{killed}; press Start to run it again", False, tail)
    cause = explain_log(tail)
    where = f" (log: {log_path})" if log_path is not None else ""
    return ExitReport(f"the backend exited with code {returncode}: {cause}{where}", False, tail)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
