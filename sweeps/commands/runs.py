"""``dropattack runs EXPERIMENT``: a sweep's trial runs with their names and MLflow run ids."""

from __future__ import annotations

import argparse
import json

from sweeps.commands.argtypes import add_store_flags, resolve_tracking_uri

NAME = "runs"
HELP = (
    "List a sweep's trial runs: readable name, status, selection and test metric, training "
    "and set-up seconds, and the MLflow run id (what `dropattack landscape` takes)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_flags(parser)
    parser.add_argument(
        "--parent", default=None, help="sweep parent run id (default: the newest in EXPERIMENT)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    uri = resolve_tracking_uri(args.mlflow_uri, args.runs_dir, existing=True)
    from sweeps.records.collect import collect
    from sweeps.records.listing import listing_json, listing_lines, trial_rows

    sweep = collect(args.experiment, uri, parent=args.parent, require_finished=False)
    rows = trial_rows(sweep)
    if args.json:
        print(json.dumps(listing_json(sweep, rows)))
    else:
        print("\n".join(listing_lines(sweep, rows)))
    return 0
