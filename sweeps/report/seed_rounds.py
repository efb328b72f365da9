"""Adding seeds to a sweep's undecided rows in rounds, until each is decided or a cap is reached
(``dropattack seeds EXPERIMENT --run``, and a spec's ``seeds: {initial, max, until: decided}``).

Each round is a grid of the open rows' configurations and their baselines on fresh seeds, run
through the sweep driver (:func:`sweeps.execution.driver.run_sweep`) on the same Ray a sweep
would use, its trials joining the sweep's MLflow parent run as children, so the report reads
every round with the sweep. After each round the rows are judged again under the rule of
:mod:`sweeps.report.rounds`, whose record goes on the parent run.

Resumable like a sweep: the rounds' state is ``RUNS_DIR/ray/EXPERIMENT.seeds-PARENT/rounds.json``
and each round has its Tune folder beside it (``round-K``). Running it again after an
interruption finishes the round under way (Tune's resume; a trial that finished is found again
in MLflow by its key, not trained twice), takes its look, and goes on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.execution.driver import SweepOptions, SweepResult, run_sweep
from sweeps.execution.state import SweepPaths
from sweeps.records.collect import SweepRuns, collect
from sweeps.report.aggregate import CellStats
from sweeps.report.analysis import analyze
from sweeps.report.cell_trials import fresh_seeds, trial_fields
from sweeps.report.effects import EffectSet, measure
from sweeps.report.match import matcher_for
from sweeps.report.rounds import TAG, Record, RowState, judge, round_size

if TYPE_CHECKING:
    from sweeps.specs.spec import Spec

__all__ = [
    "DEFAULT_MAX_SEEDS",
    "RoundsOptions",
    "RoundsResult",
    "device_share",
    "rounds_folder",
    "run_rounds",
]

#: The declared maximum of seeds per arm when neither the flag nor an earlier round sets one.
DEFAULT_MAX_SEEDS = 20
STATE = "rounds.json"


@dataclass
class RoundsOptions:
    """How to add the rounds (the ``dropattack seeds --run`` flags)."""

    max_seeds: int | None = None  # declared maximum; None: the record's, else 20
    step: int | None = None  # seeds per round; None: the record's, else the seeds rows have
    budget_hours: float | None = None  # device-hours the rounds may spend at most
    metric: str = "test_acc"
    parent: str | None = None
    address: str | None = None
    runs_dir: str | Path = "runs"
    max_concurrent: int | None = None
    live: bool | None = None
    status: Callable[[str], None] | None = None
    command: str = ""
    data_dir: str | None = None


@dataclass
class RoundsResult:
    """Where the rounds ended."""

    experiment: str
    parent_run_id: str
    record: Record
    rows: list[RowState]
    stopped: str
    rounds_run: int = 0  # rounds this call ran (or finished)
    trials_added: int = 0  # trials those rounds ran
    device_hours: float = 0.0  # measured, over every round so far
    interrupted: bool = False
    results: list[SweepResult] = field(default_factory=list)


def rounds_folder(experiment: str, parent_run_id: str) -> str:
    """The rounds' folder under ``RUNS_DIR/ray`` (one per sweep parent run)."""
    return f"{experiment}.seeds-{parent_run_id[:8]}"


def _measure(experiment: str, uri: str, opts: RoundsOptions) -> tuple[SweepRuns, EffectSet]:
    sweep = collect(experiment, uri, opts.parent)
    analysis = analyze(sweep, matcher_for(sweep.paper_table), opts.metric)
    effects = measure(analysis.cells, analysis.matcher, analysis.metric)
    if not effects.rows:
        raise ValueError(
            f"sweep {experiment!r}: no configuration was measured against a baseline "
            "(add a baseline to the spec, e.g. `method: standard` or p = 0)"
        )
    return sweep, effects


def device_share(sweep: SweepRuns) -> float:
    """Devices one trial held: its GPUs, else its CPUs (the parent run's params)."""
    for name in ("gpus_per_trial", "cpus_per_trial"):
        try:
            value = float(sweep.parent.params.get(name, ""))
        except ValueError:
            continue
        if value > 0:
            return value
    return 1.0


def _resources(sweep: SweepRuns) -> dict[str, float]:
    params = sweep.parent.params
    return {
        k: float(params[p])
        for k, p in (("cpus", "cpus_per_trial"), ("gpus", "gpus_per_trial"))
        if params.get(p)
    }


def _record(sweep: SweepRuns, effects: EffectSet, opts: RoundsOptions) -> Record:
    record = Record.from_tag(sweep.parent.tags.get(TAG))
    if record is None:
        counts = [min(e.cell.n, e.baseline.n) for e in effects.rows]
        step = opts.step or max(1, min(counts))
        return Record(max_seeds=opts.max_seeds or DEFAULT_MAX_SEEDS, step=step)
    if opts.max_seeds and opts.max_seeds != record.max_seeds:
        raise ValueError(
            f"--max-seeds {opts.max_seeds}: the rounds of sweep {sweep.experiment!r} declared "
            f"{record.max_seeds} seeds per arm at most, and a declared maximum cannot change "
            f"once looks are taken (run it with --max-seeds {record.max_seeds})"
        )
    if opts.step and opts.step != record.step:
        raise ValueError(
            f"seeds per round {opts.step}: the rounds of sweep {sweep.experiment!r} add "
            f"{record.step} per round"
        )
    return record


def _save_record(sweep: SweepRuns, record: Record) -> None:
    from mlflow import MlflowClient

    MlflowClient(sweep.tracking_uri).set_tag(sweep.parent.run_id, TAG, record.to_tag())


def _read_state(home: Path, parent: str) -> dict[str, Any]:
    path = home / STATE
    if path.is_file():
        state = json.loads(path.read_text())
        if state.get("parent_run_id") == parent:
            return state
    return {"parent_run_id": parent, "rounds": []}


def _write_state(home: Path, state: dict[str, Any]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(home / STATE)


def _round_spec(
    sweep: SweepRuns, cells: list[CellStats], seeds: list[int], k: int, opts: RoundsOptions
) -> Spec:
    """The round's grid spec; raises ValueError when a configuration cannot be rebuilt."""
    from sweeps.specs.data import apply_data_dir
    from sweeps.specs.merge import stood_for_cells
    from sweeps.specs.space import expand_grid
    from sweeps.specs.spec import PAPER_TABLES, parse_spec

    data = {
        "name": f"{sweep.experiment}-seeds-{k}",
        "description": f"round {k} of seeds added to {sweep.experiment} (parent run "
        f"{sweep.parent.run_id})",
        "paper_table": sweep.paper_table if sweep.paper_table in PAPER_TABLES else "",
        "trials": [trial_fields(c) for c in cells],
        "seeds": seeds,
        "search": {
            "algorithm": "grid",
            "metric": sweep.selection_metric,
            "mode": sweep.selection_mode,
        },
        "resources": _resources(sweep),
    }
    spec = parse_spec(apply_data_dir(data, opts.data_dir), f"round {k} of {sweep.experiment}")
    got = stood_for_cells(expand_grid(spec))
    lost = [c.key for c in cells if c.key not in got]
    if lost:
        raise ValueError(
            f"cannot rebuild configuration {lost[0]!r} of sweep {sweep.experiment!r} from its "
            "runs' params for a round of seeds"
        )
    return spec


def _run_round(
    sweep: SweepRuns,
    effects: EffectSet,
    entry: dict[str, Any],
    home: Path,
    folder: str,
    opts: RoundsOptions,
) -> SweepResult:
    by_key = {c.key: c for e in effects.rows for c in (e.cell, e.baseline)}
    missing = [k for k in entry["cells"] if k not in by_key]
    if missing:
        raise ValueError(
            f"round {entry['round']}: configuration {missing[0]!r} is not in the sweep"
        )
    cells = [by_key[k] for k in entry["cells"]]
    spec = _round_spec(sweep, cells, entry["seeds"], entry["round"], opts)
    tune_dir = home / f"round-{entry['round']}"
    resume = (tune_dir / "tuner.pkl").exists()
    if not resume and tune_dir.exists():  # stopped before Tune saved anything: start it anew
        shutil.rmtree(tune_dir)
    return run_sweep(
        spec,
        SweepOptions(
            address=opts.address,
            mlflow_uri=sweep.tracking_uri,
            experiment=sweep.experiment,
            resume=resume,
            max_concurrent=opts.max_concurrent,
            runs_dir=opts.runs_dir,
            command=opts.command,
            live=opts.live,
            status=opts.status,
            attach=sweep.parent.run_id,
            folder=f"{folder}/round-{entry['round']}",
        ),
    )


def _estimate_hours(cells: list[CellStats], seeds: int, share: float) -> float | None:
    """Device-hours of a round: each cell's mean measured seconds (the mean over cells where
    one has none), ``seeds`` trials each; None when no trial recorded its seconds."""
    known = [c.mean_seconds for c in cells if c.mean_seconds is not None]
    if not known:
        return None
    fallback = sum(known) / len(known)
    secs = sum(c.mean_seconds if c.mean_seconds is not None else fallback for c in cells)
    return secs * seeds * share / 3600


def _why_stopped(states: list[RowState]) -> str:
    undecided = sum(not s.decided for s in states)
    if not undecided:
        return "every row decided"
    return f"{undecided} of {len(states)} rows at the declared maximum of seeds, undecided"


def run_rounds(experiment: str, uri: str, opts: RoundsOptions) -> RoundsResult:
    """Add seeds in rounds to the undecided rows of sweep ``experiment`` (and their baselines)
    until every row is decided or a cap is reached; resumes rounds an interruption cut short.

    Raises:
        ValueError: no sweep, no row with a baseline, a changed declared maximum, a
            configuration that cannot be rebuilt.
        SweepError, UnreachableError: as :func:`run_sweep`.
    """
    say = opts.status or (lambda _line: None)
    sweep, effects = _measure(experiment, uri, opts)
    record = _record(sweep, effects, opts)
    folder = rounds_folder(experiment, sweep.parent.run_id)
    home = SweepPaths(Path(opts.runs_dir).resolve()).ray / folder
    state = _read_state(home, sweep.parent.run_id)
    out = RoundsResult(experiment, sweep.parent.run_id, record, [], "")
    out.device_hours = sum(r.get("device_hours") or 0.0 for r in state["rounds"])
    share = device_share(sweep)
    while True:
        last = state["rounds"][-1] if state["rounds"] else None
        if last is not None and last["status"] != "judged":
            if last["status"] != "finished":
                result = _run_round(sweep, effects, last, home, folder, opts)
                out.results.append(result)
                out.rounds_run += 1
                out.trials_added += result.counts["done"] - result.counts["skipped"]
                if result.interrupted:
                    out.interrupted = True
                    out.stopped = "interrupted"
                    break
                hours = sum(result.trial_seconds) * share / 3600
                last.update(status="finished", device_hours=hours)
                out.device_hours += hours
                _write_state(home, state)
            sweep, effects = _measure(experiment, uri, opts)
            out.rows = judge(effects.rows, record, take_look=True)
            record.rounds = len(state["rounds"])
            _save_record(sweep, record)
            last["status"] = "judged"
            _write_state(home, state)
            grew = [s for s in out.rows if s.n > last["pairs"].get(s.id, s.n)]
            if not grew:
                out.stopped = f"round {last['round']} added no pair (its trials failed)"
                break
            say(_look_line(last["round"], out.rows))
            continue
        out.rows = judge(effects.rows, record, take_look=True)
        _save_record(sweep, record)
        size = round_size(out.rows, record.max_seeds, record.step)
        if not size:
            out.stopped = _why_stopped(out.rows)
            break
        open_ = [s for s in out.rows if s.open]
        cells = list({c.key: c for s in open_ for c in (s.effect.cell, s.effect.baseline)}.values())
        hours = _estimate_hours(cells, size, share)
        budget = opts.budget_hours
        if budget is not None and hours is not None and out.device_hours + hours > budget:
            out.stopped = (
                f"budget: the next round ({len(cells) * size} trials, about {hours:.2f} "
                f"device-hours) would pass --budget-hours {budget:g} "
                f"({out.device_hours:.2f} spent)"
            )
            break
        k = len(state["rounds"]) + 1
        seeds = fresh_seeds(sweep.seeds, size)
        state["rounds"].append(
            {
                "round": k,
                "seeds": seeds,
                "cells": [c.key for c in cells],
                "pairs": {s.id: s.n for s in open_},
                "status": "running",
            }
        )
        _write_state(home, state)
        say(
            f"{experiment}: round {k}: seeds {', '.join(map(str, seeds))} for {len(open_)} "
            f"undecided rows ({len(cells)} configurations, {len(cells) * size} trials"
            + ("" if hours is None else f", about {hours:.2f} device-hours")
            + ")"
        )
    if not out.interrupted:
        record.stopped = out.stopped
        _save_record(sweep, record)
    return out


def _look_line(k: int, rows: list[RowState]) -> str:
    decided = sum(s.decided for s in rows)
    return f"look after round {k}: {decided} of {len(rows)} rows decided"
