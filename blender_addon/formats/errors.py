"""The one error type for malformed files and requests: it names the field and the fix."""

from __future__ import annotations


class FormatError(ValueError):
    """Input that does not follow one of Avatar Foundry's formats.

    ``field`` is a dotted path into the input (``views[3].label``), ``hint`` says what to change.
    """

    def __init__(self, field: str, message: str, hint: str = "") -> None:
        self.field = field
        self.message = message
        self.hint = hint
        super().__init__(f"{field}: {message}" + (f" ({hint})" if hint else ""))
