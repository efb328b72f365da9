"""``dropattack plan SPEC``: what a sweep costs before it runs (see :mod:`sweeps.cost.plan`)."""

from __future__ import annotations

import argparse
import json

from sweeps.commands.argtypes import add_data_dir, gpu_share_or_auto, positive_int, seconds

NAME = "plan"
HELP = (
    "Predict a sweep's cost before it runs: its trials grouped into cost shapes, each "
    "calibrated on this machine (or a node of --address) within --budget seconds, and the "
    "sweep's wall time, trial-hours and device-hours."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="spec name (sweeps/specs/NAME.yaml) or path to a YAML file")
    parser.add_argument(
        "--address",
        default=None,
        help="calibrate on a node of this Ray cluster (auto, ray://HOST:10001 or HOST:PORT) "
        "with the trial's resources (default: this machine)",
    )
    parser.add_argument(
        "--gpus-per-trial",
        type=gpu_share_or_auto,
        default=None,
        help="GPUs per trial, or auto: the fraction measured from peak memory and the "
        "throughput of 1, 2, 4, ... trials on one GPU (default: the spec's)",
    )
    parser.add_argument(
        "--max-concurrent", type=positive_int, default=None, help="at most N trials at once"
    )
    parser.add_argument(
        "--budget",
        type=seconds,
        default=60.0,
        help="seconds of calibration at most; shapes past it are scaled or left unpredicted, "
        "and the plan says which (default: 60)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from sweeps.commands import UsageError
    from sweeps.cost.plan import PlanError, make_plan
    from sweeps.records.store import UnreachableError
    from sweeps.specs.data import data_problems, first_problem
    from sweeps.specs.load import load_spec

    spec = load_spec(args.spec, args.data_dir)
    problems = data_problems(spec)
    if problems:  # before Ray starts and the calibration loads anything
        raise UsageError(first_problem(problems))
    say = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        plan = make_plan(
            spec,
            address=args.address,
            gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent,
            budget=args.budget,
            status=say,
        )
    except (PlanError, UnreachableError) as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(plan.as_json(), indent=1))
    else:
        print("\n".join(plan.table()))
    return 0
