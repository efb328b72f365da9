"""The error every data loader raises for input the user can fix."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Missing or malformed data: the message names the file, row or field and what was expected.

    A :class:`ValueError`, so the ``dropattack`` command prints it as a one-line error.
    """
