"""Any exception -> the AvatarFoundryError a user sees (code, message, hint, field).

Used for HTTP responses and for the ``error`` of a failed job alike, so both say the same thing.
Unknown exceptions become INTERNAL with a short message; their traceback goes to the server log only.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import sys

from pydantic import ValidationError

from blender_addon.formats import protocol
from blender_addon.formats.errors import FormatError

from ..errors import AvatarFoundryError, DataDirUnwritable, DiskFull, InvalidInput, OutOfMemory, ServerBusy

log = logging.getLogger("avatar_foundry.server")


class InternalError(AvatarFoundryError):
    code = protocol.INTERNAL
    http_status = 500


class PayloadTooLarge(AvatarFoundryError):
    code = protocol.PAYLOAD_TOO_LARGE
    http_status = 413


def to_foundry_error(error: BaseException, field_prefix: str = "") -> AvatarFoundryError:
    """The user-facing error for ``error``; ``field_prefix`` is put before pydantic field paths."""
    if isinstance(error, AvatarFoundryError):
        return error
    if isinstance(error, FormatError):
        return InvalidInput.from_format_error(error)
    if isinstance(error, ValidationError):
        return invalid_input_from_validation(error.errors(), field_prefix)
    if _is_out_of_memory(error):
        return OutOfMemory()
    storage_problem = _storage_error(error)
    if storage_problem is not None:
        return storage_problem
    log.error("unexpected error", exc_info=(type(error), error, error.__traceback__))
    return InternalError(f"internal error ({type(error).__name__})", "see the backend's log for details; please report it")


def invalid_input_from_validation(errors: list[dict], field_prefix: str = "") -> InvalidInput:
    """The first pydantic error as INVALID_INPUT, its location as a dotted field path. Of the errors
    about the first field, the deepest is named: for a union (``[w_dim]`` or ``[num_ws][w_dim]``)
    that is the member that came closest, not the first one tried."""
    field_errors = [error for error in errors if error.get("loc", ())[:1] == errors[0].get("loc", ())[:1]]
    first = max(field_errors, key=lambda error: len(error.get("loc", ())))
    # pydantic puts the member it tried of a union (e.g. 'list[constrained-float]') into the path; no field name has '['
    location = ".".join(str(part) for part in first.get("loc", ()) if part != "body" and "[" not in str(part))
    field = ".".join(part for part in (field_prefix, location) if part) or None
    message = first.get("msg", "is invalid")
    hints = {
        "missing": "add this field",
        "extra_forbidden": "remove this field; it is not a parameter of this job kind",
    }
    hint = hints.get(first.get("type", ""), "give a value of the expected type")
    extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return InvalidInput(f"{message}{extra}", hint, field)


_UNWRITABLE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
_UNWRITABLE_SQLITE_CODES = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM)
_WRITABLE_HINT = "make the folder writable for the user running the backend, or start it with another --data-dir"


def _storage_error(error: BaseException) -> AvatarFoundryError | None:
    """DISK_FULL or DATA_DIR_UNWRITABLE for a failed file or database write; None for other errors."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return DiskFull()
    if isinstance(error, OSError) and error.errno in _UNWRITABLE_ERRNOS:
        where = f" {error.filename}" if error.filename else ""
        return DataDirUnwritable(f"cannot write{where}: {error.strerror}", _WRITABLE_HINT)
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary code; extended codes add high bits
        if code == sqlite3.SQLITE_FULL:
            return DiskFull()
        if code in _UNWRITABLE_SQLITE_CODES:
            return DataDirUnwritable(f"cannot write the job database ({error})", _WRITABLE_HINT)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in str(error):
            return DatabaseLocked()
        if code == sqlite3.SQLITE_CORRUPT or "malformed" in str(error):
            return InternalError("the job database (jobs.sqlite3 in the data dir) is damaged",
                                 "restart the backend: it sets the damaged file aside and rebuilds the jobs from their folders")
    return None


class DatabaseLocked(ServerBusy):
    """Another program holds the job database's lock (a database browser, a backup tool)."""

    def __init__(self, message: str = "the job database (jobs.sqlite3 in the data dir) is locked by another program",
                 hint: str = "close the program that has it open (a database browser, a backup tool), then try again",
                 field: str | None = None) -> None:
        super().__init__(message, hint, field)


def _is_out_of_memory(error: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    if isinstance(error, MemoryError):
        return True
    message = str(error).lower()
    # CUDA: "CUDA out of memory"; the CPU allocator: "DefaultCPUAllocator: can't allocate memory: you tried to allocate ..."
    return isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def error_response(error: AvatarFoundryError, headers: dict[str, str] | None = None):
    """The HTTP response for ``error``: its status and ``{"error": {code, message, hint, field}}``.

    Server-side failures (5xx) and refused bodies (413, whose body is left unread) say
    ``Connection: close``, so a keep-alive client opens a new connection instead of finding its
    old one dropped.
    """
    from starlette.responses import JSONResponse

    if error.http_status >= 500 or error.http_status == 413:
        headers = {**(headers or {}), "Connection": "close"}
    return JSONResponse({"error": error.to_json()}, status_code=error.http_status, headers=headers)
