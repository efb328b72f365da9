"""A sweep's trial runs as a listing: one row per trial run, by its readable name.

``dropattack runs EXPERIMENT`` prints it; its run ids are what ``dropattack landscape`` takes.
A row holds the trial's name (its MLflow run name, :func:`sweeps.specs.names.trial_name`), status,
seed, the sweep's selection metric and the test metric, the time split (``train_seconds``,
``setup_seconds``, ``trial_seconds``), the cell key and, for a failed trial, its error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sweeps.records.collect import RunRecord, SweepRuns
from sweeps.records.printable import printable

__all__ = ["TrialRow", "listing_json", "listing_lines", "trial_rows"]

#: The seconds a row shows, as the trials log them (older runs lack the split).
TIMES = ("train_seconds", "setup_seconds", "trial_seconds")
TEST_METRIC = "test_acc"


@dataclass
class TrialRow:
    """One trial run of a sweep."""

    run_id: str
    name: str
    status: str
    seed: str
    cell: str
    metrics: dict[str, float | None]
    error: str = ""


def _name(run: RunRecord) -> str:
    name = run.tags.get("mlflow.runName", "")
    return name or f"{run.name} s{run.params.get('seed', '?')}"


def trial_rows(sweep: SweepRuns) -> list[TrialRow]:
    """The sweep's trial runs, by name (a configuration's seeds together)."""
    keys = dict.fromkeys([sweep.selection_metric, TEST_METRIC, *TIMES])
    rows = [
        TrialRow(
            run_id=r.run_id,
            name=_name(r),
            status=r.status,
            seed=r.params.get("seed", ""),
            cell=r.cell,
            metrics={k: r.metrics.get(k) for k in keys},
            error=r.error,
        )
        for r in sweep.runs
    ]
    return sorted(rows, key=lambda row: (row.name, row.run_id))


def listing_json(sweep: SweepRuns, rows: list[TrialRow]) -> dict[str, Any]:
    """The ``dropattack runs --json`` object."""
    return {
        "experiment": sweep.experiment,
        "tracking_uri": sweep.tracking_uri,
        "parent_run_id": sweep.parent.run_id,
        "selection_metric": sweep.selection_metric,
        "runs": [asdict(row) for row in rows],
    }


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def listing_lines(sweep: SweepRuns, rows: list[TrialRow]) -> list[str]:
    """A heading line, then one aligned line per trial run: run id first (to copy)."""
    metric = sweep.selection_metric
    others = f" (newest of {len(sweep.other_parents) + 1}; --parent RUN_ID for another)"
    head = (
        f"{printable(sweep.experiment)}: {len(rows)} trial runs of sweep parent run "
        f"{printable(sweep.parent.run_id)}" + (others if sweep.other_parents else "")
    )
    table = [["run id", "status", metric, TEST_METRIC, "train s", "setup s", "name"]]
    for row in rows:
        m = row.metrics
        table.append(
            [
                printable(row.run_id),
                printable(row.status),
                _num(m[metric], 4),
                _num(m[TEST_METRIC], 4),
                _num(m["train_seconds"], 1),
                _num(m["setup_seconds"], 1),
                printable(row.name + (f"  ({row.error})" if row.error else "")),
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    lines = [head]
    for r in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return lines
