"""The ``dropattack`` command: parses arguments and hands them to one subcommand module.

Each module in :mod:`sweeps.commands` defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``; this file only wires them together. :data:`COMMANDS` holds each
command's one-line summary, so ``dropattack --help`` and ``--version`` import no command
module (several pull in torch, Ray or MLflow: seconds each). A module that sets
``PASSTHROUGH = True`` receives the words after a ``--`` as ``args.passthrough`` (for another
program: ``submit --slurm`` hands them to sbatch); other commands refuse them.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

from sweeps.commands import UsageError

#: Every subcommand and the line ``dropattack --help`` shows for it.
COMMANDS = {
    "train": "train one task with one method (one trial, no Ray)",
    "tasks": "list the tasks, their paper aliases and parameters",
    "data": "list, fetch and check the datasets the tasks read",
    "plan": "what a sweep will cost, measured before it runs",
    "sweep": "run a sweep spec on Ray Tune, tracked in MLflow",
    "confirm": "rerun a sweep's selected configurations on new seeds",
    "report": "a sweep's results beside the paper's tables",
    "seeds": "the seeds each row's verdict needs, and what they cost",
    "runs": "list a sweep's trial runs with their names and ids",
    "landscape": "loss landscapes around trained runs' weights",
    "submit": "send a sweep to a Ray cluster as a Ray Job, or to Slurm",
    "jobs": "status, logs or stop of Ray Jobs on a cluster",
}

#: Exit status of a process whose reader went away (128 + SIGPIPE), as a shell reports it.
EXIT_BROKEN_PIPE = 141


def version() -> str:
    """The installed distribution's version (no import of the torch-based package)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("dropattack")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


class _Parser(argparse.ArgumentParser):
    """Bad arguments as one line naming the flag (no usage block), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _OneLineFormatter(argparse.HelpFormatter):
    """Room for the longest command name, so each command's summary stays on its line
    (argparse measures subcommand names 2 columns short and would wrap ``landscape``'s)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog)
        self._action_max_length = max(map(len, COMMANDS)) + 6


def _modules(argv: Sequence[str], every: bool) -> Iterator[ModuleType]:
    """The chosen subcommand's module (or every one with ``every``); none for the top level."""
    chosen = next((a for a in argv if not a.startswith("-")), None)
    names = list(COMMANDS) if every else [chosen] if chosen in COMMANDS else []
    for name in names:
        try:
            yield importlib.import_module(f"sweeps.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"sweeps.commands.{name}":
                raise


def build_parser(argv: Sequence[str] = (), every: bool = False) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in ``argv`` (or all with ``every``) gets its
    arguments, the others are listed by their summary alone."""
    parser = _Parser(
        prog="dropattack",
        description="DropAttack training and distributed hyperparameter sweeps.",
        epilog="`dropattack COMMAND --help` shows a command's options.",
        formatter_class=_OneLineFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    loaded = {mod.NAME: mod for mod in _modules(argv, every)}
    for name, summary in COMMANDS.items():
        mod = loaded.get(name)
        p = sub.add_parser(name, help=summary, description=mod.HELP if mod else summary)
        if mod is not None:
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run, _passthrough=getattr(mod, "PASSTHROUGH", False))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if passthrough and not args._passthrough:
        parser.error(f"{args.command} takes nothing after --: {' '.join(passthrough)}")
    args.passthrough = passthrough
    try:
        return int(args._run(args) or 0)
    except (UsageError, ValueError, OSError) as e:
        if isinstance(e, BrokenPipeError):
            raise
        print(f"dropattack {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dropattack {args.command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        if e.name not in _DB_DRIVERS:
            raise
        print(
            f"dropattack {args.command}: error: the tracking store's database needs the "
            f"Python driver {e.name!r}: pip install {e.name}",
            file=sys.stderr,
        )
        return 2
    except Exception as e:
        if not type(e).__module__.startswith(_STORE_ERRORS):
            raise
        print(f"dropattack {args.command}: error: {_first_line(e)}", file=sys.stderr)
        return 2


#: Modules whose exceptions describe a tracking store the user named (a database that does
#: not answer, a server that refuses): shown as their first line, not as a traceback.
_STORE_ERRORS = ("mlflow.exceptions", "sqlalchemy.exc")
#: Database drivers SQLAlchemy imports for a ``postgresql://``, ``mysql://`` or ``mssql://``
#: tracking URI; MLflow does not install them.
_DB_DRIVERS = frozenset({"psycopg", "psycopg2", "pymysql", "MySQLdb", "pyodbc", "pymssql"})


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _one_line(e: BaseException) -> str:
    """An OSError as ``strerror: path`` (no ``[Errno 13]``), anything else as its message."""
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"{e.filename}: {e.strerror}"
    return str(e)


def console_main() -> None:
    """The ``dropattack`` console script: :func:`main`, then exit.

    A reader that stops early (``dropattack tasks | head -1``) ends the command quietly, as
    it ends any Unix tool. The objects torch, Ray and MLflow leave behind are frozen first,
    so the interpreter does not garbage-collect them one last time on the way out (about 2 s
    on 2 cores, measured).
    """
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console_main()
