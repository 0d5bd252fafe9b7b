"""Loaded models kept between jobs, keyed by everything that changes them; freed on request or idle."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")


class ModelCache:
    def __init__(self, idle_seconds: float | None = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[Hashable, Any] = {}
        self._lock = threading.RLock()
        self._last_used = clock()
        self._clock = clock
        self.idle_seconds = idle_seconds

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The cached value for ``key``, loading it on first use. Loading a key with the same
        first element (the model's role, e.g. 'multiview-pipeline') replaces the old entry, so
        changed settings never keep two copies on the device."""
        with self._lock:
            self._last_used = self._clock()
            if key not in self._entries:
                role = key[0] if isinstance(key, tuple) and key else key
                for stale in [k for k in self._entries if (k[0] if isinstance(k, tuple) and k else k) == role]:
                    del self._entries[stale]
                _free_device_memory()
                self._entries[key] = load()
            return self._entries[key]

    def touch(self) -> None:
        """Restart the idle clock (a job just finished using the models)."""
        with self._lock:
            self._last_used = self._clock()

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> int:
        """Drop every model and return device memory; returns how many were dropped."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
        _free_device_memory()
        return count

    def clear_if_idle(self) -> bool:
        with self._lock:
            idle = self.idle_seconds is not None and self._entries and self._clock() - self._last_used >= self.idle_seconds
        if idle:
            self.clear()
        return bool(idle)


def _free_device_memory() -> None:
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
