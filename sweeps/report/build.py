"""``build_report``: one sweep's MLflow runs in, Markdown/HTML/JSON report files out.

Flow: collect (MLflow) -> analyze (cells, verdicts, tests, Pareto) -> tables and figures ->
render -> files in the output folder, also logged as artifacts of the sweep's parent run.
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

from sweeps.report import extension, render
from sweeps.report.aggregate import Analysis, analyze
from sweeps.report.collect import check_store, collect, default_tracking_uri
from sweeps.report.figures import Figure, FigureSet, curves_figure, grid_figures
from sweeps.report.match import matcher_for
from sweeps.report.tables import (
    cells_table,
    comparison_table,
    describe,
    failures_table,
    layout_tables,
    mean_std,
    num,
    pareto_table,
    varying_params,
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
        f"Experiment: {sweep.experiment} (tracking URI {sweep.tracking_uri})",
        f"Sweep parent run: {sweep.parent.run_id}"
        + (
            f" (newest of {len(sweep.other_parents) + 1}; choose another with --parent)"
            if sweep.other_parents
            else ""
        ),
        f"Paper table: {sweep.paper_table or 'none'} — layout: {analysis.matcher.title}",
        f"Metric: {analysis.metric}" + (" (in %, as the paper)" if analysis.unit else ""),
        f"Trial runs: {len(sweep.runs)} ({statuses}); aggregated "
        f"{sum(c.n for c in analysis.cells)} FINISHED runs into {len(analysis.cells)} "
        "configurations",
    ]
    if analysis.failed:
        items.append(f"Failed runs: {len(analysis.failed)} (listed under 'Runs not aggregated')")
    if analysis.missing_metric:
        items.append(f"FINISHED runs without {analysis.metric}: {len(analysis.missing_metric)}")
    return items


def _best_lines(analysis: Analysis) -> list[str]:
    names = varying_params(analysis.cells)
    lines = []
    for c in analysis.comparisons:
        line = f"{c.task or 'task ?'}: best {describe(c.best, names)} — {mean_std(c.best)} "
        line += f"(n={c.best.n})"
        if c.baseline is not None:
            line += (
                f"; baseline {describe(c.baseline, names)} — {mean_std(c.baseline)} "
                f"(n={c.baseline.n})"
            )
        if c.t is not None and math.isfinite(c.t):
            line += f"; Welch t = {c.t:.3f}, p = {c.pvalue:.3g}"
        if c.note:
            line += f" ({c.note})"
        lines.append(line)
    return lines


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
    lines.append(
        f"Largest gap: paper − measured = {num(worst.verdict.diff)} "
        f"({describe(worst, varying_params(analysis.cells))})"
    )
    return lines


def _blocks(analysis: Analysis, figures: FigureSet, experiment: str) -> list:
    pareto_keys = {c.key for front in analysis.fronts.values() for c in front}
    blocks: list = [
        render.Heading(f"DropAttack sweep report: {experiment}", 1),
        render.Bullets(_summary(analysis)),
        render.Heading("Best configuration"),
        render.Bullets(_best_lines(analysis)),
    ]
    layout = layout_tables(analysis)
    if layout:
        blocks += [render.Heading("The paper's layout"), *layout]
    blocks += [render.Heading("Verdicts"), render.Bullets(_verdict_lines(analysis))]
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


def _as_json(analysis: Analysis) -> dict:
    def clean(x):
        return None if isinstance(x, float) and not math.isfinite(x) else x

    return {
        "experiment": analysis.sweep.experiment,
        "parent_run_id": analysis.sweep.parent.run_id,
        "paper_table": analysis.sweep.paper_table,
        "metric": analysis.metric,
        "status_counts": analysis.sweep.status_counts(),
        "cells": [
            {
                "key": c.key,
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
            }
            for c in analysis.cells
        ],
        "comparisons": [
            {
                "task": c.task,
                "best": c.best.key,
                "baseline": c.baseline.key if c.baseline else None,
                "t": clean(c.t),
                "pvalue": clean(c.pvalue),
                "note": c.note,
            }
            for c in analysis.comparisons
        ],
        "pareto": {task: [c.key for c in front] for task, front in analysis.fronts.items()},
        "failed": [{"run_id": r.run_id, "error": r.error} for r in analysis.failed],
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
    with clock("figures"):
        figures = grid_figures(analysis)
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
        for fmt in formats:
            path = out / f"report.{fmt}"
            path.write_text(writers[fmt](), encoding="utf-8")
            report.files[fmt] = path
    if log_artifacts:
        with clock("log"):
            for path in report.files.values():
                client.log_artifact(sweep.parent.run_id, str(path), ARTIFACT_DIR)
                report.logged.append(f"{ARTIFACT_DIR}/{path.name}")
    return report
