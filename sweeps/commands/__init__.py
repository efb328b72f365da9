"""Subcommands of the ``dropattack`` command, one module each (see :mod:`sweeps.cli`)."""
