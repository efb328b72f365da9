"""``dropattack sweep SPEC``: run a spec's trials on Ray Tune, tracked in MLflow."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

from sweeps.commands.argtypes import (
    add_data_dir,
    add_driver_flags,
    experiment_name,
    gpu_share_or_auto,
    seconds,
    tracking_uri,
)

if TYPE_CHECKING:
    from sweeps.execution.driver import SweepOptions
    from sweeps.specs.spec import Spec

NAME = "sweep"
HELP = (
    "Run a sweep spec (a name such as quickstart, or a YAML path) on Ray Tune with MLflow "
    "tracking; without flags everything runs locally under ./runs."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="spec name (sweeps/specs/NAME.yaml) or path to a YAML file")
    parser.add_argument(
        "--mlflow-uri",
        type=tracking_uri,
        default=None,
        help="MLflow tracking URI, e.g. http://HOST:5000 (default: MLFLOW_TRACKING_URI, "
        "else sqlite:///RUNS_DIR/mlflow.db)",
    )
    parser.add_argument(
        "--experiment",
        type=experiment_name,
        default=None,
        help="MLflow experiment and sweep name (default: spec name)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep of this name, also one whose driver was killed (running the "
        "same spec again continues it too; another spec needs --experiment NAME)",
    )
    parser.add_argument(
        "--gpus-per-trial",
        type=gpu_share_or_auto,
        default=None,
        help="GPUs per trial; a fraction lets several trials share a GPU; auto measures it "
        "(default: the spec's)",
    )
    parser.add_argument(
        "--plan-budget",
        type=seconds,
        default=5.0,
        help="seconds of calibration before the sweep, for its ETA from the first second "
        "(dropattack plan); 0: no plan unless resources are auto (default: 5)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the resolved trials and stop")
    add_driver_flags(parser)
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import logging

    from sweeps.commands import UsageError
    from sweeps.specs.load import load_spec

    spec = load_spec(args.spec, args.data_dir)
    if args.dry_run:
        from sweeps.specs.space import describe_trials

        print("\n".join(describe_trials(spec, args.gpus_per_trial)))
        if spec.seed_rounds is not None:
            r = spec.seed_rounds
            print(
                f"then seeds until decided: rounds of {r.initial} more for the undecided rows "
                f"and their baselines, at most {r.max} per arm"
            )
        from sweeps.specs.data import data_pairs

        roots = sorted({d for _, d in data_pairs(spec) if d})
        if roots:
            print(f"data_dir: {', '.join(roots)}")
        return 0
    from sweeps.specs.data import data_problems, first_problem

    problems = data_problems(spec)
    if problems:  # before Ray starts
        raise UsageError(first_problem(problems))
    from sweeps.cluster.connect import ray_session
    from sweeps.commands.argtypes import resolve_tracking_uri
    from sweeps.execution.driver import SweepError, SweepOptions
    from sweeps.records.store import UnreachableError

    resolve_tracking_uri(args.mlflow_uri, args.runs_dir)  # before Ray starts

    for name in ("mlflow", "optuna"):  # the live view is the console
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # printed below

    options = SweepOptions(
        address=args.address,
        mlflow_uri=args.mlflow_uri,
        experiment=args.experiment,
        resume=args.resume,
        max_concurrent=args.max_concurrent,
        gpus_per_trial=args.gpus_per_trial,
        runs_dir=args.runs_dir,
        command=shlex.join(["dropattack", *sys.argv[1:]]),
        live=False if args.no_live else None,
        status=lambda line: print(line, flush=True),
        plan_budget=0.0 if args.resume else args.plan_budget,
    )
    from sweeps.cost.plan import PlanError

    try:
        with ray_session():
            return _run(args, spec, options)
    except (UnreachableError, SweepError, PlanError) as e:
        raise UsageError(str(e)) from None


def _run(args: argparse.Namespace, spec: Spec, options: SweepOptions) -> int:
    """Run the sweep and print its summary; the exit status."""
    from sweeps.execution.driver import run_sweep

    result = run_sweep(spec, options)
    c = result.counts
    print(
        f"{result.experiment}: {c['done']} done ({c['skipped']} before this run), "
        f"{c['failed']} failed, {c['stopped']} stopped early, {c['unfinished']} unfinished "
        f"in {result.wall_seconds:.1f}s"
    )
    from sweeps.specs.names import config_name

    if len(result.best_by_task) > 1:  # one best per task: configurations of tasks don't compare
        for b in result.best_by_task.values():
            print(
                f"best {result.metric} {b['value']:.4f} (mean of {b['n']} seeds): "
                f"{config_name(b['trial'])}  ({b['trial']['cell']})"
            )
    elif result.best is not None:
        b = result.best
        print(
            f"best {result.metric} {result.best_value:.4f} (mean of {result.best_n} seeds): "
            f"{config_name(b)}  ({b['cell']})"
        )
    print(f"MLflow parent run {result.parent_run_id} in experiment {result.experiment!r}")
    print(f"open the MLflow UI: {result.ui_command}")
    if result.ui_url and not result.ui_command.endswith(result.ui_url):
        print(f"  then its runs at {result.ui_url}")
    if result.optuna:
        print(f"open the Optuna study: optuna-dashboard {result.optuna['storage']}")
    if spec.seed_rounds is not None and not result.interrupted:
        rounds = _add_rounds(args, spec, options, result)
        if rounds.interrupted:
            result.interrupted = True
    if result.interrupted:
        print(
            f"interrupted; continue with: dropattack sweep {args.spec} --resume"
            + (f" --experiment {args.experiment}" if args.experiment else "")
        )
        return 130
    return 1 if c["failed"] else 0


def _add_rounds(args: argparse.Namespace, spec: Spec, options: SweepOptions, result: Any) -> Any:
    """The spec's ``seeds: {initial, max, until: decided}``: rounds of seeds for the rows the
    sweep left undecided (as ``dropattack seeds EXPERIMENT --run``)."""
    from sweeps.commands.seeds import round_lines
    from sweeps.report.seed_rounds import RoundsOptions, run_rounds

    rounds = spec.seed_rounds
    print(
        f"{result.experiment}: seeds until decided: {rounds.initial} per round, at most "
        f"{rounds.max} per arm",
        flush=True,
    )
    try:
        out = run_rounds(
            result.experiment,
            result.tracking_uri,
            RoundsOptions(
                max_seeds=rounds.max,
                step=rounds.initial,
                address=options.address,
                runs_dir=options.runs_dir,
                max_concurrent=options.max_concurrent,
                live=options.live,
                status=options.status,
                command=options.command,
                data_dir=args.data_dir,
            ),
        )
    except ValueError as e:
        from sweeps.commands import UsageError

        raise UsageError(str(e)) from None
    print("\n".join(round_lines(out)))
    return out
