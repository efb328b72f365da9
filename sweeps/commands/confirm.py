"""``dropattack confirm EXPERIMENT``: run a sweep's selected configurations again on fresh seeds.

The top ``--top`` configurations of each task, ranked on validation by the rule the sweep and
the report use (:mod:`sweeps.records.selection`), and the baseline each is compared with run again
on ``--seeds`` seeds the sweep never used, through the same driver, as the sweep
``EXPERIMENT-confirm`` (its own MLflow experiment; the parent run is tagged
``dropattack.confirms=<the sweep's parent run id>``). ``dropattack report EXPERIMENT`` then
adds the confirmed difference: the configuration was fixed before these runs, so their
difference to the baseline carries no selection bias.

The confirmation is a generated grid spec: one ``trials`` entry per configuration, rebuilt
from its runs' params (and checked to give the same cell key), and the fresh seeds. Being a
spec, it resumes like any sweep (``--resume``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.commands.argtypes import (
    add_data_dir,
    add_driver_flags,
    experiment_name,
    positive_int,
    tracking_uri,
)

if TYPE_CHECKING:
    from sweeps.records.collect import SweepRuns
    from sweeps.report.aggregate import CellStats
    from sweeps.report.analysis import Analysis
    from sweeps.specs.spec import Spec

NAME = "confirm"
HELP = (
    "Confirm a sweep's result: rerun the top K configurations of each task (selected on "
    "validation) and their baselines on N fresh seeds, as the sweep EXPERIMENT-confirm; "
    "`dropattack report EXPERIMENT` then adds the confirmed difference."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiment",
        type=experiment_name,
        help="MLflow experiment name of the sweep (its spec name)",
    )
    parser.add_argument(
        "--top",
        type=positive_int,
        default=1,
        help="configurations per task to confirm, best on validation first (default 1)",
    )
    parser.add_argument(
        "--seeds",
        type=positive_int,
        default=5,
        help="fresh seeds per configuration, none of them used by the sweep (default 5)",
    )
    parser.add_argument(
        "--mlflow-uri",
        type=tracking_uri,
        default=None,
        help="tracking URI of the sweep (default: MLFLOW_TRACKING_URI, else "
        "sqlite:///RUNS_DIR/mlflow.db); the confirmation logs there too",
    )
    parser.add_argument(
        "--parent", default=None, help="sweep parent run id (default: the newest in EXPERIMENT)"
    )
    parser.add_argument(
        "--experiment",
        dest="name",
        metavar="NAME",
        type=experiment_name,
        default=None,
        help="MLflow experiment and sweep name of the confirmation (default: EXPERIMENT-confirm)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted confirmation"
    )
    add_driver_flags(parser)
    add_data_dir(parser)


# --------------------------------------------------------------------------- the plan


def fresh_seeds(used: set[str], count: int) -> list[int]:
    """``count`` seeds after the largest integer seed in ``used`` (so none of them)."""
    from sweeps.report import cell_trials

    return cell_trials.fresh_seeds(used, count)


def trial_fields(cell: CellStats) -> dict[str, Any]:
    """The spec ``trials`` entry of a configuration, from its runs' params."""
    from sweeps.report import cell_trials

    return cell_trials.trial_fields(cell)


def chosen_cells(analysis: Analysis, top: int) -> dict[str, list[CellStats]]:
    """Per task: its ``top`` best configurations on validation that are not baselines, each
    followed by the baseline it is compared with (once per task).

    Raises UsageError for a task without a baseline or without any other configuration.
    """
    from sweeps.commands import UsageError
    from sweeps.records.selection import rank_key
    from sweeps.report.aggregate import baseline_of

    by_task: dict[str, list[CellStats]] = defaultdict(list)
    for cell in analysis.cells:
        by_task[cell.task].append(cell)
    out: dict[str, list[CellStats]] = {}
    for task, cells in by_task.items():
        ranked = sorted(
            (c for c in cells if not c.is_baseline),
            key=lambda c: rank_key(c.key, c.selection_values, analysis.mode),
        )
        if not any(c.is_baseline for c in cells):
            raise UsageError(
                f"sweep {analysis.sweep.experiment!r}, task {task!r}: no baseline configuration "
                f"among its {len(cells)} finished configurations; a confirmation compares the "
                "selected configuration with its baseline (add one to the spec, e.g. "
                "`method: standard`)"
            )
        if not ranked:
            raise UsageError(
                f"sweep {analysis.sweep.experiment!r}, task {task!r}: only baseline "
                "configurations finished; there is nothing to confirm against them"
            )
        picked: list[CellStats] = []
        for cell in ranked[:top]:
            base = baseline_of(cell, cells)
            picked += [c for c in (cell, base) if c is not None and c not in picked]
        out[task] = picked
    return out


def _original_spec(sweep: SweepRuns) -> dict[str, Any]:
    """The sweep's spec as its parent run stored it (``spec.yaml``), or {} when absent."""
    import yaml
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = MlflowClient(sweep.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="dropattack-confirm-") as tmp:
        try:
            path = client.download_artifacts(sweep.parent.run_id, "spec.yaml", tmp)
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (MlflowException, OSError, yaml.YAMLError):  # none stored: the parent's params
            return {}
    return data if isinstance(data, dict) else {}


def confirmation_spec(
    analysis: Analysis, top: int, seeds: int, data_dir: str | None = None
) -> Spec:
    """The confirmation sweep as a grid spec; its trials' cells are the chosen cells.
    ``data_dir`` (``--data-dir``) replaces the data root the sweep's runs logged.

    Raises UsageError when a configuration cannot be rebuilt from its params.
    """
    from sweeps.commands import UsageError
    from sweeps.records.collect import confirm_experiment
    from sweeps.specs.data import apply_data_dir
    from sweeps.specs.merge import stood_for_cells
    from sweeps.specs.space import expand_grid
    from sweeps.specs.spec import PAPER_TABLES, parse_spec

    sweep = analysis.sweep
    chosen = chosen_cells(analysis, top)
    cells = [c for picked in chosen.values() for c in picked]
    original = _original_spec(sweep)
    params = sweep.parent.params
    resources = original.get("resources") or {
        k: float(params[p])
        for k, p in (("cpus", "cpus_per_trial"), ("gpus", "gpus_per_trial"))
        if params.get(p)
    }
    data = {
        "name": confirm_experiment(sweep.experiment),
        "description": (
            f"confirmation of {sweep.experiment} (parent run {sweep.parent.run_id}): the top "
            f"{top} configurations of each task on {analysis.selection_metric} and their "
            "baselines, on fresh seeds"
        ),
        "paper_table": sweep.paper_table if sweep.paper_table in PAPER_TABLES else "",
        "trials": [trial_fields(c) for c in cells],
        "seeds": fresh_seeds(sweep.seeds, seeds),
        "search": {
            "algorithm": "grid",
            "metric": analysis.selection_metric,
            "mode": analysis.mode,
        },
        "resources": resources,
        "keep_checkpoint": original.get("keep_checkpoint", True),
    }
    spec = parse_spec(apply_data_dir(data, data_dir), f"confirmation of {sweep.experiment}")
    got = stood_for_cells(expand_grid(spec))
    lost = [c.key for c in cells if c.key not in got]
    if lost:
        raise UsageError(
            f"cannot rebuild configuration {lost[0]!r} of sweep {sweep.experiment!r} from its "
            f"runs' params (the rebuilt trials are: {', '.join(sorted(got))})"
        )
    return spec


# --------------------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> int:
    import logging

    from sweeps.commands.argtypes import resolve_tracking_uri

    uri = resolve_tracking_uri(args.mlflow_uri, args.runs_dir, existing=True)
    from sweeps.cluster.connect import ray_session
    from sweeps.commands import UsageError
    from sweeps.execution.driver import SweepError, SweepOptions, run_sweep
    from sweeps.records.collect import CONFIRMS_TAG, collect
    from sweeps.records.store import UnreachableError
    from sweeps.report.analysis import analyze
    from sweeps.report.match import matcher_for

    sweep = collect(args.experiment, uri, args.parent)
    analysis = analyze(sweep, matcher_for(sweep.paper_table))
    spec = confirmation_spec(analysis, args.top, args.seeds, args.data_dir)
    from sweeps.specs.data import data_problems, first_problem

    problems = data_problems(spec)
    if problems:  # before Ray starts
        raise UsageError(first_problem(problems))
    for name in ("mlflow", "optuna"):  # the live view is the console
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    print(
        f"{spec.name}: confirming {sweep.experiment} (parent run {sweep.parent.run_id}) on "
        f"seeds {', '.join(map(str, spec.seeds))}",
        flush=True,
    )
    options = SweepOptions(
        address=args.address,
        mlflow_uri=args.mlflow_uri,
        experiment=args.name or spec.name,
        resume=args.resume,
        max_concurrent=args.max_concurrent,
        runs_dir=args.runs_dir,
        command=shlex.join(["dropattack", *sys.argv[1:]]),
        live=False if args.no_live else None,
        status=lambda line: print(line, flush=True),
        parent_tags={CONFIRMS_TAG: sweep.parent.run_id},
    )
    try:
        with ray_session():
            result = run_sweep(spec, options)
    except (UnreachableError, SweepError) as e:
        raise UsageError(str(e)) from None
    c = result.counts
    print(
        f"{result.experiment}: {c['done']} done ({c['skipped']} before this run), "
        f"{c['failed']} failed, {c['unfinished']} unfinished in {result.wall_seconds:.1f}s"
    )
    print(f"MLflow parent run {result.parent_run_id} in experiment {result.experiment!r}")
    if result.interrupted:
        print(
            f"interrupted; continue with: dropattack confirm {args.experiment} --resume"
            + (f" --experiment {args.name}" if args.name else "")
        )
        return 130
    print(f"add it to the report: dropattack report {args.experiment}")
    return 1 if c["failed"] else 0
