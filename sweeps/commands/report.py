"""``dropattack report EXPERIMENT``: a sweep's results beside the paper's, as Markdown and HTML."""

from __future__ import annotations

import argparse

from sweeps.commands.argtypes import add_store_flags, output_dir, resolve_tracking_uri

NAME = "report"
HELP = (
    "Report a sweep from MLflow: the paper's table layout with its numbers beside the measured "
    "ones, verdicts, the configuration selected on validation against its baseline (95% CI, "
    "raw and Holm-adjusted p), its confirmation on fresh seeds, cost Pareto set and figures."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_flags(parser)
    parser.add_argument(
        "--out",
        type=output_dir,
        default=None,
        help="output folder (default: RUNS_DIR/reports/EXPERIMENT)",
    )
    parser.add_argument(
        "--format",
        default="md,html",
        help="comma-separated: md, html, json (default md,html); report.json is always written too",
    )
    parser.add_argument(
        "--metric", default="test_acc", help="final metric to aggregate (default test_acc)"
    )
    parser.add_argument(
        "--parent", default=None, help="sweep parent run id (default: the newest in EXPERIMENT)"
    )
    parser.add_argument(
        "--curves",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw Figure 2 from per-epoch history (default: only for figure2 sweeps)",
    )
    parser.add_argument(
        "--no-log", action="store_true", help="do not log the report files to the parent run"
    )


def _num(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    uri = resolve_tracking_uri(args.mlflow_uri, args.runs_dir, existing=True)
    from sweeps.report import build_report
    from sweeps.report.build import default_out_dir
    from sweeps.report.reproduction import summary_lines

    out = args.out or default_out_dir(args.experiment, args.runs_dir)
    report = build_report(
        args.experiment,
        tracking_uri=uri,
        out_dir=out,
        formats=args.format,
        metric=args.metric,
        parent=args.parent,
        curves=args.curves,
        log_artifacts=not args.no_log,
    )
    a = report.analysis
    print(
        f"{args.experiment}: {len(a.cells)} configurations from "
        f"{sum(c.n for c in a.cells)} finished runs ({len(a.failed)} failed)"
    )
    for warning in a.warnings:
        print(f"  warning: {warning}")
    if a.effects is not None and a.effects.judged():
        for line in summary_lines(a):
            print(f"  {line}")
    for c in a.comparisons:
        print(
            f"  selected {c.task or '?'}: {c.best.name} (highest mean {a.selection_metric} "
            f"{_num(c.best.selection_mean, 4)}), {a.metric} {c.best.mean:.2f} (n={c.best.n})"
            + (f", vs baseline {c.difference:+.2f}" if c.difference is not None else "")
            + (
                f", p {c.pvalue:.3g} raw, {c.pvalue_adjusted:.3g} Holm"
                if c.pvalue is not None and c.pvalue_adjusted is not None
                else ""
            )
        )
        confirmed = a.confirmation.selected.get(c.task) if a.confirmation else None
        if confirmed is not None:
            print(
                f"    confirmed on {confirmed.cell.n} fresh seeds: {confirmed.diff.value:+.2f}"
                + (f", p {confirmed.diff.pvalue:.3g}" if confirmed.diff.pvalue is not None else "")
            )
    for name, path in report.files.items():
        print(f"  wrote {name}: {path}")
    if report.logged:
        print(f"  logged {len(report.logged)} files to parent run {a.sweep.parent.run_id}")
    return 0
