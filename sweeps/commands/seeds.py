"""``dropattack seeds EXPERIMENT``: how many seeds each row's verdict needs, and their cost;
with ``--run``, adding them in rounds until every row is decided.

The plan is :mod:`sweeps.report.seeds`, the rounds :mod:`sweeps.report.seed_rounds`; this
module parses, reads the sweep and prints.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from typing import TYPE_CHECKING

from sweeps.commands.argtypes import (
    add_data_dir,
    add_store_flags,
    positive_float,
    positive_int,
    ray_address,
    resolve_tracking_uri,
    seconds,
)

if TYPE_CHECKING:
    from sweeps.records.collect import SweepRuns
    from sweeps.report.aggregate import CellStats
    from sweeps.report.seed_rounds import RoundsResult
    from sweeps.report.seeds import RowSeeds, SeedsPlan

NAME = "seeds"
HELP = (
    "For each row measured against a baseline: its seeds, effect, interval and verdict; the "
    "seeds per arm that would decide it at the stated power (against 0 and against the "
    "paper's effect), and the trials and device-hours they would add. With --run, add seeds "
    "in rounds to the undecided rows and their baselines until every row is decided "
    "(a group-sequential rule) or a cap is reached."
)


def power(text: str) -> float:
    """A power strictly between 0 and 1 (``--power``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a power between 0 and 1, got {text!r}")
    return value


def max_seeds(text: str) -> int:
    """At least 2 seeds per arm (``--max-seeds``): a paired test needs two."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_flags(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--power",
        type=power,
        default=0.8,
        help="the chance of deciding a row that the seeds needed are sized for (default 0.8)",
    )
    parser.add_argument(
        "--max-seeds",
        type=max_seeds,
        default=None,
        help="seeds per arm at most; rows needing more cannot be decided within it; with --run "
        "the declared maximum of the rounds (default 20, or the one the rounds declared)",
    )
    parser.add_argument(
        "--metric", default="test_acc", help="final metric the effects are on (default test_acc)"
    )
    parser.add_argument(
        "--parent", default=None, help="sweep parent run id (default: the newest in EXPERIMENT)"
    )
    parser.add_argument(
        "--budget",
        type=seconds,
        default=60.0,
        help="seconds of calibration at most, for arms no trial of which recorded its time "
        "(as `dropattack plan --budget`; default 60)",
    )
    parser.add_argument(
        "--run",
        action="store_true",
        help="add seeds in rounds, in the same experiment and MLflow parent run, to the "
        "undecided rows and their baselines until every row is decided or a cap is reached; "
        "run it again to continue interrupted rounds",
    )
    parser.add_argument(
        "--budget-hours",
        type=positive_float,
        default=None,
        help="with --run: device-hours the rounds may spend at most (measured; a round that "
        "would pass it is not started)",
    )
    parser.add_argument(
        "--address",
        type=ray_address,
        default=None,
        help="with --run: Ray cluster: auto, ray://HOST:10001 or HOST:PORT (default: a local Ray)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=positive_int,
        default=None,
        help="with --run: at most N trials at once",
    )
    parser.add_argument(
        "--no-live", action="store_true", help="with --run: one line per finished trial"
    )
    add_data_dir(parser)


def _calibrator(sweep: SweepRuns, budget: float):
    """Seconds per trial of arms without recorded seconds, from the plan's calibration."""

    def calibrate(cells: list[CellStats]) -> dict[str, float]:
        from sweeps.commands.confirm import trial_fields
        from sweeps.cost.plan import PlanError, make_plan, plan_trials
        from sweeps.specs.spec import parse_spec

        spec = parse_spec(
            {"name": f"{sweep.experiment}-seeds", "trials": [trial_fields(c) for c in cells]},
            f"calibration of {sweep.experiment}",
        )
        try:
            plan = make_plan(spec, budget=budget)
        except (PlanError, ValueError) as e:
            print(f"seeds: could not calibrate the unpriced arms: {e}", file=sys.stderr)
            return {}
        predicted = plan.predicted()
        trials, _ = plan_trials(spec)  # one per entry (one seed), in the cells' order
        return {
            c.key: predicted[t["key"]]
            for c, t in zip(cells, trials, strict=True)
            if t["key"] in predicted
        }

    return calibrate


def _ci(r: RowSeeds) -> list[float] | None:
    ci = r.effect.ci95
    return None if ci is None else [ci[0], ci[1]]


def as_json(plan: SeedsPlan) -> dict:
    """The ``--json`` form (its keys are a contract: see the README)."""
    return {
        "rows": [
            {
                "row": r.name,
                "n": r.n,
                "effect": r.effect.value,
                "ci95": _ci(r),
                "effect_test": r.effect.diff.test,
                "verdict": r.verdict,
                "seeds_needed": {"against_zero": r.against_zero, "against_paper": r.against_paper},
                "trials_to_add": r.trials_to_add,
                "device_hours": r.device_hours,
            }
            for r in plan.rows
        ],
        "total_trials_to_add": plan.total_trials,
        "total_device_hours": plan.total_device_hours,
    }


def _needed(n: int | None) -> str:
    return "more than 10,000" if n is None else str(n)


def _lines(plan: SeedsPlan, sweep: SweepRuns) -> list[str]:
    out = [
        f"{sweep.experiment}: seeds per arm to decide each row with power {plan.power:g} at "
        f"its family's Holm level (0.05 / rows against the same baseline), at most "
        f"{plan.max_seeds}"
    ]
    for r in plan.rows:
        e = r.effect
        ci = "no interval" if e.ci95 is None else f"[{e.ci95[0]:+.2f}, {e.ci95[1]:+.2f}]"
        paper = "" if e.paper_effect is None else f", paper {e.paper_effect:+.2f}"
        out.append(
            f"  {r.name} vs {e.baseline.name}: n = {r.n}, effect {e.value:+.2f} {ci} "
            f"({e.diff.test}{paper}): {r.verdict or e.note or 'no verdict'}"
        )
        if r.decided:
            out.append(f"    decided at n = {r.n}: {r.verdict or 'the interval excludes 0'}")
            continue
        need = f"    seeds needed: {_needed(r.against_zero)} to show the "
        need += "paper's effect against 0" if e.paper_effect else "effect against 0"
        if e.paper_effect is not None:
            need += f", {_needed(r.against_paper)} to tell it from the paper's"
        out.append(need)
        if r.trials_to_add:
            hours = "unpriced" if r.device_hours is None else f"{r.device_hours:.2f} device-hours"
            out.append(
                f"    add {r.row_trials} trials of the row and {r.base_trials} of its baseline: "
                f"{hours}"
            )
        else:
            out.append(f"    cannot be decided within --max-seeds {plan.max_seeds}: {r.why}")
    hours = plan.total_device_hours
    out.append(
        f"total: {plan.total_trials} trials to add, "
        + ("unpriced" if hours is None else f"{hours:.2f} device-hours")
        + (
            f" ({len(plan.priced_by_calibration)} arms priced by calibration)"
            if plan.priced_by_calibration
            else ""
        )
    )
    return out


def round_lines(result: RoundsResult) -> list[str]:
    """Where the rounds ended: the rule, the looks and each row's adjusted interval."""
    rec = result.record
    out = [
        f"{result.experiment}: {rec.rule}, at most {rec.max_seeds} seeds per arm, "
        f"{rec.step} per round; {rec.rounds} rounds so far"
        + (f" ({result.rounds_run} now, {result.trials_added} trials)" if result.rounds_run else "")
        + f", {result.device_hours:.2f} device-hours measured"
    ]
    for s in result.rows:
        looks = ", ".join(map(str, s.looks)) or "none"
        if s.look is None:
            said = "no look yet (fewer than 2 paired seeds)"
        else:
            lo, hi = s.look.interval
            said = f"effect {s.look.mean:+.2f}, adjusted interval [{lo:+.2f}, {hi:+.2f}]"
        state = "decided" if s.decided else ("undecided at the cap" if s.capped else "undecided")
        out.append(f"  {s.effect.cell.name}: looks at {looks} pairs; {said}: {state}")
    out.append(f"stopped: {result.stopped}")
    return out


def _run_rounds(args: argparse.Namespace, uri: str) -> int:
    import logging
    import os

    from sweeps.cluster.connect import ray_session
    from sweeps.commands import UsageError
    from sweeps.execution.state import SweepError
    from sweeps.records.store import UnreachableError
    from sweeps.report.seed_rounds import RoundsOptions, run_rounds

    for name in ("mlflow", "optuna"):  # the live view is the console
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    options = RoundsOptions(
        max_seeds=args.max_seeds,
        budget_hours=args.budget_hours,
        metric=args.metric,
        parent=args.parent,
        address=args.address,
        runs_dir=args.runs_dir,
        max_concurrent=args.max_concurrent,
        live=False if args.no_live else None,
        status=lambda line: print(line, flush=True),
        command=shlex.join(["dropattack", *sys.argv[1:]]),
        data_dir=args.data_dir,
    )
    try:
        with ray_session():
            result = run_rounds(args.experiment, uri, options)
    except (ValueError, UnreachableError, SweepError) as e:
        raise UsageError(str(e)) from None
    print("\n".join(round_lines(result)))
    if result.interrupted:
        print(f"interrupted; continue with: dropattack seeds {args.experiment} --run")
        return 130
    return 0


def run(args: argparse.Namespace) -> int:
    from sweeps.commands import UsageError
    from sweeps.records.collect import collect
    from sweeps.report.analysis import analyze
    from sweeps.report.effects import measure
    from sweeps.report.match import matcher_for
    from sweeps.report.rounds import TAG, Record, apply
    from sweeps.report.seed_rounds import device_share
    from sweeps.report.seeds import plan_seeds

    flags = (
        ("--budget-hours", args.budget_hours),
        ("--address", args.address),
        ("--max-concurrent", args.max_concurrent),
    )
    run_only = [f for f, v in flags if v is not None]
    if run_only and not args.run:
        raise UsageError(f"{run_only[0]}: only with --run")
    uri = resolve_tracking_uri(args.mlflow_uri, args.runs_dir, existing=True)
    if args.run:
        return _run_rounds(args, uri)
    try:
        sweep = collect(args.experiment, uri, args.parent)
        analysis = analyze(sweep, matcher_for(sweep.paper_table), args.metric)
    except ValueError as e:
        raise UsageError(str(e)) from None
    effects = apply(
        measure(analysis.cells, analysis.matcher, analysis.metric),
        Record.from_tag(sweep.parent.tags.get(TAG)),
    )
    if not effects.rows:
        raise UsageError(
            f"sweep {args.experiment!r}: no configuration was measured against a baseline "
            "(add a baseline to the spec, e.g. `method: standard` or p = 0)"
        )
    plan = plan_seeds(
        effects,
        power=args.power,
        max_seeds=args.max_seeds or 20,
        device_share=device_share(sweep),
        calibrate=_calibrator(sweep, args.budget),
    )
    if args.json:
        print(json.dumps(as_json(plan), indent=1))
    else:
        print("\n".join(_lines(plan, sweep)))
    return 0
