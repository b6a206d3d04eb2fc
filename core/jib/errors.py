"""The error every user-facing failure becomes.

A JibError's ``str()`` is one line that says what went wrong and what to do; front ends print it
as-is (no traceback). Other exceptions are bugs.
"""

from __future__ import annotations


class JibError(Exception):
    """A failure the user can act on. ``str(err)`` is a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class InvalidReferenceError(JibError, ValueError):
    """An image reference that does not parse."""


class ImageFormatError(JibError):
    """A manifest, config, index or archive that is malformed or inconsistent."""


class DigestMismatchError(JibError):
    """Content whose sha256 is not the one it was named by."""
