"""``build_report``: one sweep's MLflow runs in, Markdown/HTML/JSON report files out.

Flow: collect (MLflow) -> analyze (cells, verdicts, selection on validation, tests, Pareto;
the confirmation sweep when there is one) -> tables and figures -> render -> files in the
output folder (``report.json`` always), also logged as artifacts of the sweep's parent run.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient

from sweeps.cluster.redact import redact_uri
from sweeps.records.collect import (
    CONFIRMS_TAG,
    check_store,
    collect,
    collect_confirmation,
    default_tracking_uri,
)
from sweeps.report import effects, extension, render, reproduction, rounds
from sweeps.report.aggregate import CellStats, Comparison, Difference
from sweeps.report.analysis import Analysis, analyze, confirm
from sweeps.report.effect_figures import effect_figures
from sweeps.report.figures import Figure, FigureSet, curves_figure, grid_figures
from sweeps.report.match import matcher_for
from sweeps.report.tables import (
    Table,
    cells_table,
    ci_text,
    comparison_table,
    confirmation_table,
    failures_table,
    layout_tables,
    mean_std,
    num,
    p_text,
    pareto_table,
    test_text,
)

__all__ = ["ARTIFACT_DIR", "Report", "build_report", "default_out_dir", "parse_formats"]

ARTIFACT_DIR = "report"
CURVE_TABLES = frozenset({"figure2"})


@dataclass
class Report:
    """A built report: the analysis behind it, its figures, and the files written/logged."""

    analysis: Analysis
    blocks: list
    figures: list[Figure]
    files: dict[str, Path] = field(default_factory=dict)
    logged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


class _Clock:
    """Adds the wall time of each ``with clock(phase):`` block to ``timings[phase]``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - start


def default_out_dir(experiment: str, runs_dir: str | Path = "runs") -> Path:
    """``RUNS_DIR/reports/EXPERIMENT`` (the name made safe as a folder name)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in experiment)
    return Path(runs_dir) / "reports" / safe


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"md,html"`` -> ("md", "html"); ValueError naming an unknown format."""
    items = text.split(",") if isinstance(text, str) else list(text)
    formats = tuple(dict.fromkeys(f.strip().lower() for f in items if f.strip()))
    unknown = [f for f in formats if f not in render.FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"--format {','.join(unknown) or repr(text)}: expected a comma-separated subset of "
            f"{','.join(render.FORMATS)}"
        )
    return formats


def _summary(analysis: Analysis) -> list[str]:
    sweep = analysis.sweep
    counts = sweep.status_counts()
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    items = [
        f"Experiment: {sweep.experiment} (tracking URI {redact_uri(sweep.tracking_uri)})",
        f"Sweep parent run: {sweep.parent.run_id}"
        + (
            f" (newest of {len(sweep.other_parents) + 1}; choose another with --parent)"
            if sweep.other_parents
            else ""
        ),
        f"Paper table: {sweep.paper_table or 'none'} — layout: {analysis.matcher.title}",
        f"Metric: {analysis.metric}" + (" (in %, as the paper)" if analysis.unit else ""),
        f"Selection: each task's best configuration is the one with the highest mean "
        f"{analysis.selection_metric} over its seeds ({analysis.mode}, as the sweep ranked "
        f"them); the report shows its {analysis.metric}",
        f"Trial runs: {len(sweep.runs)} ({statuses}); aggregated "
        f"{sum(c.n for c in analysis.cells)} FINISHED runs into {len(analysis.cells)} "
        "configurations",
    ]
    shared = len(sweep.runs) - len({r.run_id for r in sweep.runs})
    if shared:
        items.append(
            f"Merged trainings: {shared} of the trial runs are cells that train as another cell "
            "does (DropAttack with p = 0 or eps = 0), read from that cell's run"
        )
    items += [f"Warning: {w}" for w in analysis.warnings]
    if analysis.failed:
        items.append(f"Failed runs: {len(analysis.failed)} (listed under 'Runs not aggregated')")
    if analysis.missing_metric:
        items.append(f"FINISHED runs without {analysis.metric}: {len(analysis.missing_metric)}")
    return items


def _difference_text(diff: Difference, unit: str) -> str:
    ci = f", 95% CI {ci_text(diff.ci95)} ({test_text(diff)})" if diff.ci95 else ""
    return f"difference {diff.value:+.2f}{' points' if unit else ''}{ci}"


def _best_lines(analysis: Analysis) -> list[str]:
    sel = analysis.selection_metric
    lines = []
    for c in analysis.comparisons:
        line = (
            f"{c.task or 'task ?'}: selected {c.best.name} — highest mean {sel} "
            f"({num(c.best.selection_mean, 4)}); {analysis.metric} {mean_std(c.best)} "
            f"(n={c.best.n})"
        )
        if c.baseline is not None:
            line += f"; baseline {c.baseline.name} — {mean_std(c.baseline)} (n={c.baseline.n})"
        if c.diff is not None:
            line += f"; {_difference_text(c.diff, analysis.unit)}"
        if c.pvalue is not None:
            line += (
                f"; p = {p_text(c.pvalue)} raw (as if it were the only configuration tested), "
                f"p = {p_text(c.pvalue_adjusted)} Holm-adjusted over the {c.comparisons} "
                "configurations compared with a baseline"
            )
        if c.note:
            line += f" ({c.note})"
        lines.append(line)
    return lines + _test_best_lines(analysis)


def _test_best_lines(analysis: Analysis) -> list[str]:
    """Where the cell with the highest test mean is not the selected one, say so."""
    return [
        f"{c.task or 'task ?'}: the highest {analysis.metric} mean is "
        f"{c.test_best.name} ({mean_std(c.test_best)}), not the selected "
        f"configuration: picking it would choose on the test set."
        for c in analysis.comparisons
        if c.test_best is not None and c.test_best is not c.best
    ]


def _confirmation_blocks(analysis: Analysis) -> list:
    """The confirmation on fresh seeds, or how to get one."""
    blocks: list = [render.Heading("Confirmation on fresh seeds")]
    conf = analysis.confirmation
    experiment = analysis.sweep.experiment
    if conf is None:
        return blocks + [
            render.Text(
                f"Not confirmed yet: `dropattack confirm {experiment}` runs the selected "
                "configurations and their baselines again on seeds the sweep did not use; the "
                "difference it measures is free of the selection's bias."
            )
        ]
    items = [
        f"Confirmation sweep: experiment {conf.sweep.experiment}, parent run "
        f"{conf.sweep.parent.run_id}; seeds {', '.join(sorted(conf.seeds, key=_seed_order))} "
        f"(the sweep used {', '.join(sorted(analysis.sweep.seeds, key=_seed_order))})"
    ]
    confirms = conf.sweep.parent.tags.get(CONFIRMS_TAG, "")
    if confirms and confirms != analysis.sweep.parent.run_id:
        items.append(
            f"It confirms parent run {confirms}, an earlier run of the same spec (same spec "
            f"hash) as the reported parent run {analysis.sweep.parent.run_id}"
        )
    for c in analysis.comparisons:
        row = conf.selected.get(c.task)
        what = f"{c.task or 'task ?'}: {c.best.name}"
        if row is None:
            items.append(f"{what}: not confirmed ({c.note or 'not in the confirmation sweep'})")
            continue
        items.append(
            f"{what} on {row.cell.n} fresh seeds: {mean_std(row.cell)} vs baseline "
            f"{mean_std(row.baseline)} (n={row.baseline.n}); "
            f"{_difference_text(row.diff, analysis.unit)}; p = {p_text(row.diff.pvalue)} "
            "(the configuration was chosen before these runs: the unbiased answer)"
        )
    return blocks + [render.Bullets(items), confirmation_table(analysis, conf)]


def _seed_order(seed: str) -> tuple:
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)


def _verdict_lines(analysis: Analysis) -> list[str]:
    judged = [c for c in analysis.cells if c.paper_metric is not None]
    if not judged:
        return ["No measured configuration has a paper number to compare with."]
    count = Counter(c.verdict.text for c in judged if c.verdict)
    lines = [
        f"{n} of {len(judged)} configurations with a paper number: {text}"
        for text, n in sorted(count.items())
    ]
    worst = max(judged, key=lambda c: abs(c.verdict.diff))
    lines.append(f"Largest gap: paper − measured = {num(worst.verdict.diff)} ({worst.name})")
    return lines


def without_paper(table: Table, title: str | None = None) -> Table:
    """``table`` without its columns about the paper (a sweep of the user's own task, whose
    spec names no ``paper_table``, compares its rows with its own baseline only)."""
    keep = [i for i, h in enumerate(table.header) if "paper" not in h.lower() and h != "verdict"]
    return Table(
        title=title or table.title,
        header=[table.header[i] for i in keep],
        rows=[[row[i] for i in keep] for row in table.rows],
    )


def _blocks(analysis: Analysis, figures: FigureSet, experiment: str) -> list:
    if not analysis.sweep.paper_table:
        return _own_blocks(analysis, figures, experiment)
    pareto_keys = {c.key for front in analysis.fronts.values() for c in front}
    blocks: list = [
        render.Heading(f"DropAttack sweep report: {experiment}", 1),
        *reproduction.summary_blocks(analysis),
        render.Heading("Sweep"),
        render.Bullets(_summary(analysis)),
        reproduction.scale_table(analysis),
        render.Heading("Best configuration: selected on validation, reported on test"),
        render.Bullets(_best_lines(analysis)),
    ]
    layout = layout_tables(analysis)
    if layout:
        blocks += [render.Heading("The paper's layout"), *layout]
        differs = _test_best_lines(analysis)
        if differs:
            blocks.append(render.Bullets(differs))
    blocks += [render.Heading("The paper's effects"), reproduction.effects_table(analysis)]
    blocks += _confirmation_blocks(analysis)
    blocks += [
        render.Heading("Absolute verdicts: each measured number against the paper's"),
        render.Bullets(_verdict_lines(analysis)),
    ]
    if figures.figures:
        blocks += [render.Heading("Figures"), *figures.figures]
    blocks += [
        render.Heading("All configurations"),
        cells_table(analysis, pareto_keys),
        comparison_table(analysis),
        pareto_table(analysis),
    ]
    failures = failures_table(analysis)
    if failures is not None:
        blocks.append(failures)
    if figures.notes:
        blocks += [render.Heading("Notes"), render.Bullets(figures.notes)]
    return blocks


def _own_blocks(analysis: Analysis, figures: FigureSet, experiment: str) -> list:
    """The report of a sweep with no paper table: its rows against its own baseline."""
    pareto_keys = {c.key for front in analysis.fronts.values() for c in front}
    effects = f"Effects: each configuration against its baseline on {analysis.metric}"
    blocks: list = [
        render.Heading(f"DropAttack sweep report: {experiment}", 1),
        render.Heading("Sweep"),
        render.Bullets(_summary(analysis)),
        render.Heading("Best configuration: selected on validation, reported on test"),
        render.Bullets(_best_lines(analysis)),
        render.Heading("Effects"),
        without_paper(reproduction.effects_table(analysis), effects),
        *_confirmation_blocks(analysis),
    ]
    if figures.figures:
        blocks += [render.Heading("Figures"), *figures.figures]
    blocks += [
        render.Heading("All configurations"),
        without_paper(cells_table(analysis, pareto_keys)),
        comparison_table(analysis),
        pareto_table(analysis),
    ]
    failures = failures_table(analysis)
    if failures is not None:
        blocks.append(failures)
    if figures.notes:
        blocks += [render.Heading("Notes"), render.Bullets(figures.notes)]
    return blocks


def _as_json(analysis: Analysis) -> dict:
    def clean(x):
        return None if isinstance(x, float) and not math.isfinite(x) else x

    return {
        "experiment": analysis.sweep.experiment,
        "selection_metric": analysis.selection_metric,
        "selection_mode": analysis.mode,
        "metric": analysis.metric,
        "tasks": [_task_json(analysis, c) for c in analysis.comparisons],
        "parent_run_id": analysis.sweep.parent.run_id,
        "paper_table": analysis.sweep.paper_table,
        "status_counts": analysis.sweep.status_counts(),
        "warnings": analysis.warnings,
        "cells": [
            {
                "key": c.key,
                "name": c.name,
                "run_ids": c.run_ids,
                "params": c.params,
                "variant": c.variant,
                "n": c.n,
                "mean": c.mean,
                "std": clean(c.std),
                "values": c.values,
                "seeds": c.seeds,
                "paper": c.paper_metric,
                "diff": c.verdict.diff if c.verdict else None,
                "verdict": c.verdict.text if c.verdict else None,
                "seconds": c.mean_seconds,
                "gpu_seconds": c.mean_gpu_seconds,
                **reproduction.cell_json(analysis, c),
            }
            for c in analysis.cells
        ],
        "effect_summary": reproduction.summary_json(analysis),
        "comparisons": [
            {
                "task": c.task,
                "best": c.best.key,
                "baseline": c.baseline.key if c.baseline else None,
                "t": clean(c.t),
                "pvalue": clean(c.pvalue),
                "pvalue_adjusted": c.pvalue_adjusted,
                "note": c.note,
            }
            for c in analysis.comparisons
        ],
        "pareto": {task: [c.key for c in front] for task, front in analysis.fronts.items()},
        "failed": [{"run_id": r.run_id, "error": r.error} for r in analysis.failed],
        "seed_rounds": _rounds_json(analysis),
    }


def _rounds_json(analysis: Analysis) -> dict | None:
    """The rounds of added seeds, if any: the rule, its declared maximum, how they ended."""
    record = rounds.Record.from_tag(analysis.sweep.parent.tags.get(rounds.TAG))
    if record is None:
        return None
    return {
        "rule": record.rule,
        "max_seeds": record.max_seeds,
        "seeds_per_round": record.step,
        "rounds": record.rounds,
        "stopped": record.stopped or None,
    }


def _clean(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _number(params: dict[str, str], name: str, kind: type) -> float | int | None:
    try:
        return kind(float(params[name]))
    except (KeyError, TypeError, ValueError):
        return None


def _config_json(cell: CellStats | None) -> dict | None:
    """``{method, attack, eps, p, k, groups, step}`` of a cell; attack as MLflow's param (aliases
    joined by ';'); absent values null."""
    if cell is None:
        return None
    params = cell.params
    return {
        "method": params.get("method") or None,
        "attack": params.get("attack") or None,
        "eps": _number(params, "eps", float),
        "p": _number(params, "p", float),
        "k": _number(params, "k", int),
        "groups": params.get("groups") or None,
        "step": params.get("step") or None,
    }


def _ci_json(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [ci[0], ci[1]]


def _task_json(analysis: Analysis, c: Comparison) -> dict:
    """One task of ``report.json`` (the keys are a contract: see the README)."""
    scale = analysis.effects.scales.get(c.task) if analysis.effects else None
    confirmed = None
    if analysis.confirmation is not None:
        row = analysis.confirmation.selected.get(c.task)
        if row is not None:
            confirmed = {
                "difference": row.diff.value,
                "ci95": _ci_json(row.diff.ci95),
                "p_value": row.diff.pvalue,
                "n": row.cell.n,
            }
    return {
        "task": c.task,
        "best": _config_json(c.best),
        "best_selection_mean": c.best.selection_mean,
        "best_metric_mean": c.best.mean,
        "best_metric_std": _clean(c.best.std),
        "n": c.best.n,
        "baseline": _config_json(c.baseline),
        "baseline_metric_mean": c.baseline.mean if c.baseline else None,
        "difference": c.difference,
        "ci95": _ci_json(c.ci95),
        "p_value": _clean(c.pvalue),
        "p_value_adjusted": c.pvalue_adjusted,
        "comparisons": c.comparisons,
        "confirmed": confirmed,
        "scale": scale.as_json() if scale else None,
    }


def build_report(
    experiment: str,
    *,
    tracking_uri: str | None = None,
    out_dir: str | Path | None = None,
    formats: str | Sequence[str] = ("md", "html"),
    metric: str = "test_acc",
    parent: str | None = None,
    curves: bool | None = None,
    log_artifacts: bool = True,
) -> Report:
    """Read the sweep ``experiment`` from MLflow and write its report files.

    ``curves`` draws Figure 2 from per-epoch history (default: for figure2 sweeps only).
    Files go to ``out_dir`` (default ``runs/reports/<experiment>``) and, with
    ``log_artifacts``, to the parent run's artifacts under ``report/``.
    """
    formats = parse_formats(formats)
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    with clock("read"):
        uri = tracking_uri or default_tracking_uri()
        check_store(uri)
        client = MlflowClient(uri)
        sweep = collect(experiment, uri, parent, client)
    with clock("aggregate"):
        analysis = analyze(sweep, matcher_for(sweep.paper_table), metric)
        analysis.effects = rounds.apply(
            effects.measure(analysis.cells, analysis.matcher, analysis.metric),
            rounds.Record.from_tag(sweep.parent.tags.get(rounds.TAG)),
        )
        confirmation = collect_confirmation(sweep, client)
        if confirmation is not None:
            analysis.confirmation = confirm(analysis, confirmation)
    with clock("figures"):
        figures = grid_figures(analysis)
        figures.figures += effect_figures(analysis).figures
        if curves or (curves is None and sweep.paper_table in CURVE_TABLES):
            drawn = curves_figure(analysis, client)
            figures.figures += drawn.figures
            figures.notes += drawn.notes
        study = extension.section(analysis)
    report = Report(
        analysis, [], figures.figures + study.figures, notes=figures.notes, timings=timings
    )
    with clock("render"):
        report.blocks = extension.insert(_blocks(analysis, figures, experiment), study)
        out = Path(out_dir) if out_dir is not None else default_out_dir(experiment)
        out.mkdir(parents=True, exist_ok=True)
        for fig in report.figures:
            path = out / fig.name
            path.write_bytes(fig.png)
            report.files[fig.name] = path
        writers = {
            "md": lambda: render.to_markdown(report.blocks),
            "html": lambda: render.to_html(report.blocks, f"DropAttack sweep report: {experiment}"),
            "json": lambda: json.dumps(_as_json(analysis), indent=2) + "\n",
        }
        for fmt in dict.fromkeys([*formats, "json"]):  # report.json with every format
            path = out / f"report.{fmt}"
            path.write_text(writers[fmt](), encoding="utf-8")
            report.files[fmt] = path
    if log_artifacts:
        with clock("log"):
            for path in report.files.values():
                client.log_artifact(sweep.parent.run_id, str(path), ARTIFACT_DIR)
                report.logged.append(f"{ARTIFACT_DIR}/{path.name}")
    return report
