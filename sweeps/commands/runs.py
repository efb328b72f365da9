"""``dropattack runs EXPERIMENT``: a sweep's trial runs with their names and MLflow run ids."""

from __future__ import annotations

import argparse
import json

from sweeps.commands.argtypes import resolve_tracking_uri, tracking_uri

NAME = "runs"
HELP = (
    "List a sweep's trial runs: readable name, status, selection and test metric, training "
    "and set-up seconds, and the MLflow run id (what `dropattack landscape` takes)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="MLflow experiment name of the sweep (its spec name)")
    parser.add_argument(
        "--mlflow-uri",
        type=tracking_uri,
        default=None,
        help="tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///RUNS_DIR/mlflow.db, "
        "where `dropattack sweep` writes by default)",
    )
    parser.add_argument(
        "--runs-dir", default="runs", help="local folder of the sweep's store (default: runs)"
    )
    parser.add_argument(
        "--parent", default=None, help="sweep parent run id (default: the newest in EXPERIMENT)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    uri = resolve_tracking_uri(args.mlflow_uri, args.runs_dir, existing=True)
    from sweeps.listing import listing_json, listing_lines, trial_rows
    from sweeps.report.collect import collect

    sweep = collect(args.experiment, uri, parent=args.parent, require_finished=False)
    rows = trial_rows(sweep)
    if args.json:
        print(json.dumps(listing_json(sweep, rows)))
    else:
        print("\n".join(listing_lines(sweep, rows)))
    return 0
