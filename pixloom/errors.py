"""The exceptions pixloom raises for problems a user can fix.

The CLI prints their message on one line and exits 2; the server answers 422.
"""

from __future__ import annotations

from typing import Any


class PixloomError(Exception):
    """Base class: a problem with the user's input, files or environment, not a bug."""


class InvalidValue(PixloomError, ValueError):
    """A parameter has a value outside what is valid; the message names the field and the fix."""

    def __init__(self, field: str, value: Any, valid: str):
        self.field, self.value, self.valid = field, value, valid
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}={shown} is invalid: {valid}")


class UnsafeFileError(PixloomError):
    """A file was refused because loading it could run code or exhaust memory."""


class CheckpointError(PixloomError):
    """A checkpoint directory is missing, incomplete, or does not match its config."""


class ImageError(PixloomError):
    """An image could not be decoded safely (bomb, unsupported format, corrupt data)."""


class DataError(PixloomError):
    """A dataset is empty, malformed, or names files that do not exist."""


def require(condition: bool, field: str, value: Any, valid: str) -> None:
    """Raise InvalidValue(field, value, valid) unless condition holds."""
    if not condition:
        raise InvalidValue(field, value, valid)
