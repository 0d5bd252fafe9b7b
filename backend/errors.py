"""Errors the backend reports to users: a stable code, a message, and a hint saying what to change.

The server turns them into JSON (``{"error": {...}}``), the CLI prints message and hint, and the
add-on shows the hint in its panel. A FormatError from the shared formats becomes INVALID_INPUT.
"""

from __future__ import annotations

from blender_addon.formats import protocol
from blender_addon.formats.errors import FormatError


class AvatarFoundryError(Exception):
    code = protocol.INTERNAL
    http_status = 500

    def __init__(self, message: str, hint: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint, "field": self.field}

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}{self.message}" + (f"\n  hint: {self.hint}" if self.hint else "")


class InvalidInput(AvatarFoundryError):
    code = protocol.INVALID_INPUT
    http_status = 422

    @classmethod
    def from_format_error(cls, error: FormatError) -> "InvalidInput":
        return cls(error.message, error.hint, error.field)


class ModelMissing(AvatarFoundryError):
    code = protocol.MODEL_MISSING
    http_status = 404


class NotFound(AvatarFoundryError):
    code = protocol.NOT_FOUND
    http_status = 404


class OutOfMemory(AvatarFoundryError):
    code = protocol.OUT_OF_MEMORY
    http_status = 507

    def __init__(self, message: str = "the device ran out of memory", hint: str = "lower the resolution or batch size, or free memory (POST /v1/unload)", field: str | None = None) -> None:
        super().__init__(message, hint, field)


class DiskFull(AvatarFoundryError):
    code = protocol.DISK_FULL
    http_status = 507

    def __init__(self, message: str = "no space left on the data disk", hint: str = "free disk space or point --data-dir at a larger disk", field: str | None = None) -> None:
        super().__init__(message, hint, field)


class DataDirUnwritable(AvatarFoundryError):
    """A folder of the data dir cannot be written (permissions, a read-only disk); the message names it."""

    code = protocol.DATA_DIR_UNWRITABLE
    http_status = 507


class ServerBusy(AvatarFoundryError):
    code = protocol.BUSY
    http_status = 503


class Cancelled(AvatarFoundryError):
    """Raised at a job's next step after the user asked to cancel it."""

    code = protocol.CANCELLED
    http_status = 409

    def __init__(self, message: str = "cancelled by the user", hint: str = "", field: str | None = None) -> None:
        super().__init__(message, hint, field)
