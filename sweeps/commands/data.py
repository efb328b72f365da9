"""``dropattack data list|fetch|check``: get the datasets and check them before a job reads them.

Parses and calls :mod:`models.availability` (what each task reads) and
:mod:`models.data.fetch` (downloads with a checksum manifest); see docs/data.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from sweeps.commands import UsageError
from sweeps.commands.argtypes import data_root, existing_dir, mirror_url, output_dir

NAME = "data"
HELP = (
    "List where each task reads its data, fetch datasets and GloVe from their public sources "
    "into a folder, or check a folder offline before a job reads it (docs/data.md)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="each task, where it reads from, and what is present")
    p.add_argument(
        "--data-dir",
        type=data_root,
        help="data root (default: $DROPATTACK_DATA)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per task")
    p = sub.add_parser("fetch", help="download datasets from their public sources (needs internet)")
    p.add_argument(
        "names",
        nargs="+",
        metavar="TASK",
        help="tasks (imdb-lstm, ...) or items: samples, imdb, pheme, agnews, mnist, cifar10, glove",
    )
    p.add_argument(
        "--to", type=output_dir, required=True, metavar="DIR", help="data root to write (created)"
    )
    p.add_argument(
        "--mirror",
        type=mirror_url,
        metavar="URL",
        help="a mirror holding each file at its source's host/path "
        "(default: $DROPATTACK_DATA_MIRROR; else the public sources)",
    )
    p = sub.add_parser("check", help="verify offline what a job will read from a data root")
    p.add_argument("names", nargs="*", metavar="TASK", help="tasks (default: those present)")
    p.add_argument("--data-dir", type=existing_dir, required=True, help="data root to check")
    p.add_argument("--no-checksums", action="store_true", help="sizes only (skip SHA-256: faster)")


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "fetch": _fetch, "check": _check}[args.action](args)


def _list(args: argparse.Namespace) -> int:
    from models import tasks
    from models.availability import task_data

    for name in tasks.names():
        row = task_data(name, args.data_dir)
        if args.json:
            print(json.dumps(row.as_json()))
            continue
        state = "present" if row.needs.problem is None else "missing"
        if not row.needs.checked:
            state = "not checked (Hugging Face)"
        files = ", ".join(p.name for p in row.needs.files[:4])
        more = f" +{len(row.needs.files) - 4}" if len(row.needs.files) > 4 else ""
        line = f"{name:<15} {row.dataset:<8} {state:<8} {row.needs.where}"
        if files:
            line += f" [{files}{more}]"
        if row.text:
            line += f"; embedding: {'GloVe ' + str(row.glove) if row.glove else 'random'}"
        if row.needs.problem and row.item:
            line += f"; fetch: dropattack data fetch {row.item} --to DIR"
        print(line)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from models.availability import fetch_items
    from models.data.fetch import fetch

    items = fetch_items(args.names)
    written = fetch(
        items, args.to, mirror=args.mirror, say=lambda s: print(s, file=sys.stderr, flush=True)
    )
    for rel, entry in written.items():
        print(f"{rel}  {entry['size']} bytes  sha256 {entry['sha256']}")
    print(f"manifest: {args.to}/manifest.json; use it with --data-dir {args.to}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from models.availability import check

    rows, problems = check(args.data_dir, args.names, checksums=not args.no_checksums)
    for row in rows:
        if row.needs.problem is None:
            extra = f", GloVe {row.glove}" if row.glove else ""
            print(f"{row.task}: {len(row.needs.files)} files in {row.needs.where}{extra}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        for line in problems[1:]:
            print(line, file=sys.stderr)
        raise UsageError(f"data check: {problems[0]}{more}")
    return 0
