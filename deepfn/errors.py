"""The one exception type users see: a one-line message naming the file/key and the fix."""

from __future__ import annotations

__all__ = ["DeepFNError"]


class DeepFNError(Exception):
    """A user-facing error.  ``str(err)`` is a single line: what is wrong, where, and what to do.

    The CLI and the pipeline entrypoints catch it, print ``error: <message>`` and exit with 2.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
