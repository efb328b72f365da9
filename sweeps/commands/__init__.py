"""Subcommands of the ``dropattack`` command, one module each (see :mod:`sweeps.cli`)."""

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad input the user can fix; printed as one line, exit status 2."""
