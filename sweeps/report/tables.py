"""The report's tables: the paper's own layouts (Tables 2-10) and the per-cell summary tables.

Tables are plain data (:class:`Table` of :class:`Span` runs) so Markdown and HTML render the
same content. :data:`LAYOUTS` maps a ``dropattack.paper_table`` tag to the function that lays
out that paper table; every report also carries the cell, comparison, Pareto and failure tables.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sweeps.report import paper
from sweeps.report.aggregate import NO_VERDICT, CellStats, Difference, Verdict
from sweeps.report.analysis import Analysis, Confirmation
from sweeps.report.effects import Effect
from sweeps.report.match import attack_set, dataset_of, param_float, param_int, table2_variant

__all__ = [
    "EFFECT_LEGEND",
    "LAYOUTS",
    "Span",
    "Table",
    "cells_table",
    "comparison_table",
    "confirmation_table",
    "effect_text",
    "failures_table",
    "layout_tables",
    "pareto_table",
    "test_text",
    "top_keys",
    "varying_params",
]


@dataclass(frozen=True)
class Span:
    """A run of text in a table entry, bold or not."""

    text: str
    bold: bool = False


Entry = tuple[Span, ...]


@dataclass
class Table:
    """A titled table: header strings and rows of entries."""

    title: str
    header: list[str]
    rows: list[list[Entry]] = field(default_factory=list)
    caption: str = ""


def plain(text: object, bold: bool = False) -> Entry:
    return (Span(str(text), bold),)


_MARKS = {True: " ✓", False: " ✗", None: ""}
DIFFERENT_SCALE_MARK = " ≈"
MARK_LEGEND = (
    "✓ reproduced (paper within mean ± 2 std or the 95% CI), ✗ not reproduced, "
    "≈ different scale (trained on other data than the paper's, so the absolute number is "
    "not the paper's to match; read the effect)"
)
DASH = "–"
SELECTED = " ◆"


def selected_keys(analysis: Analysis) -> frozenset[str]:
    """Cell keys of each task's configuration selected on validation."""
    return frozenset(c.best.key for c in analysis.comparisons)


def p_text(p: float | None) -> str:
    return DASH if p is None else f"{p:.3g}"


def test_text(diff: Difference) -> str:
    """``paired (5, r = 0.62)`` or ``Welch``: the test a difference's interval comes from."""
    if diff.test != "paired":
        return "Welch"
    r = DASH if diff.correlation is None else f"{diff.correlation:.2f}"
    return f"paired ({diff.n_pairs}, r = {r})"


def ci_text(ci: tuple[float, float] | None) -> str:
    return DASH if ci is None else f"[{num(ci[0])}, {num(ci[1])}]"


def num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{x:.{digits}f}"


def mean_std(cell: CellStats) -> str:
    return num(cell.mean) if cell.n < 2 else f"{num(cell.mean)} ± {num(cell.std)}"


def _f1_text(cell: CellStats) -> str:
    if cell.f1_mean is None:
        return ""
    return f"/{num(cell.f1_mean)}" + (f" ± {num(cell.f1_std)}" if cell.f1_std is not None else "")


def _paper_text(value: paper.PaperValue | None, f1: bool) -> str:
    if value is None:
        return DASH
    if f1 and value.f1 is not None:
        return f"{num(value.acc)}/{num(value.f1)}"
    return num(value.acc)


def _mark(v: Verdict | None) -> str:
    if v is not None and v.reproduced is False and v.different_scale:
        return DIFFERENT_SCALE_MARK
    return _MARKS[v.reproduced] if v is not None else ""


def signed(x: float | None) -> str:
    return DASH if x is None else f"{x:+.2f}"


def effect_text(effect: Effect | None, baseline: bool = False) -> str:
    """``+2.42 [0.86, 3.98] (paper +1.48): reproduced``; ``baseline`` for the baseline row."""
    if effect is None:
        return "baseline" if baseline else DASH
    text = signed(effect.value)
    if effect.ci95 is not None:
        text += f" {ci_text(effect.ci95)}"
    if effect.paper_effect is not None:
        text += f" (paper {signed(effect.paper_effect)})"
    if effect.verdict:
        text += f": {effect.verdict}"
    elif effect.paper_effect is not None:
        text += f": no verdict ({effect.note or 'no test'})"
    return text


def _effect_of(analysis: Analysis, cells: Sequence[CellStats]) -> str:
    """The effect text of the best of ``cells`` (the one the absolute entry shows)."""
    if not cells or analysis.effects is None:
        return DASH
    cell = _best(cells)
    return effect_text(analysis.effects.of(cell), baseline=cell.is_baseline)


EFFECT_LEGEND = (
    "Effect: measured mean minus the mean of the row's baseline in the same paper table, "
    "[95% CI: paired t on shared seeds, else Welch] (the paper's difference): verdict, after "
    "Holm's adjustment over the rows measured against that baseline (see 'The paper's effects')."
)


def _best(cells: Sequence[CellStats]) -> CellStats:
    return max(cells, key=lambda c: (c.mean, c.n))


def measured_entry(
    cells: Sequence[CellStats],
    paper_value: paper.PaperValue | None,
    *,
    f1: bool = False,
    bold_measured: bool = False,
    bold_paper: bool = False,
    selected: frozenset[str] = frozenset(),
) -> Entry:
    """``mean ± std (paper) ✓`` for the best of the cells matching one paper number;
    ``◆`` when one of them is a ``selected`` configuration."""
    paper_span = Span(_paper_text(paper_value, f1), bold_paper)
    if not cells:
        return (Span(DASH), Span(" ("), paper_span, Span(")"))
    cell = _best(cells)
    measured = mean_std(cell) + (_f1_text(cell) if f1 else "")
    more = f" [best of {len(cells)}]" if len(cells) > 1 else ""
    mark = _mark(cell.verdict) + (SELECTED if any(c.key in selected for c in cells) else "")
    return (Span(measured, bold_measured), Span(" ("), paper_span, Span(f"){mark}{more}"))


def top_keys(values: dict, n: int = 10) -> set:
    """Keys of the ``n`` highest values, ties with the n-th included (as the paper bolds)."""
    if not values:
        return set()
    ranked = sorted(values.values(), reverse=True)
    cut = ranked[min(n, len(ranked)) - 1]
    return {k for k, v in values.items() if v >= cut}


def _by_key(analysis: Analysis) -> dict[tuple, list[CellStats]]:
    out: dict[tuple, list[CellStats]] = defaultdict(list)
    for cell in analysis.cells:
        key = analysis.matcher.key(cell)
        if key is not None:
            out[key].append(cell)
    return out


def _caption(analysis: Analysis, extra: str = "") -> str:
    return (
        f"Each entry: measured {analysis.metric} in {analysis.unit or 'its unit'}, "
        f"mean ± sample std over seeds (paper's value); {MARK_LEGEND}; ◆ the configuration "
        f"selected on validation (highest mean {analysis.selection_metric}). {extra}"
    ).strip()


def _table10(analysis: Analysis) -> list[Table]:
    by_key = _by_key(analysis)
    eps_axis = sorted(set(paper.EPSILONS) | {k[0] for k in by_key})
    p_axis = sorted(set(paper.PROBABILITIES) | {k[1] for k in by_key})
    measured_top = top_keys({k: _best(v).mean for k, v in by_key.items()})
    table = Table(
        title=analysis.matcher.title,
        header=["p \\ ε", *(f"ε = {e:g}" for e in eps_axis)],
        caption=_caption(
            analysis,
            "Bold: the ten best, with ties (paper's top ten on the paper's numbers, the "
            "measured top ten on the measured numbers).",
        ),
    )
    for p in p_axis:
        row = [plain(f"p = {p:g}")]
        for eps in eps_axis:
            key = (round(eps, 6), round(p, 6))
            row.append(
                measured_entry(
                    by_key.get(key, []),
                    analysis.matcher.paper.get(key),
                    bold_measured=key in measured_top,
                    bold_paper=key in paper.TABLE10_TOP,
                    selected=selected_keys(analysis),
                )
            )
        table.rows.append(row)
    return [table, _table10_effects(analysis, by_key, eps_axis, p_axis)]


def _table10_effects(
    analysis: Analysis, by_key: dict, eps_axis: Sequence[float], p_axis: Sequence[float]
) -> Table:
    """Table 10 read against its p = 0 row: each cell's effect beside the paper's."""
    table = Table(
        title="Table 10, effects: each (ε, p) against p = 0",
        header=["p \\ ε", *(f"ε = {e:g}" for e in eps_axis)],
        caption=EFFECT_LEGEND,
    )
    for p in p_axis:
        row = [plain(f"p = {p:g}")]
        for eps in eps_axis:
            row.append(plain(_effect_of(analysis, by_key.get((round(eps, 6), round(p, 6)), []))))
        table.rows.append(row)
    return table


def _datasets(analysis: Analysis) -> list[str]:
    measured = [dataset_of(c.params) for c in analysis.cells]
    return list(paper.DATASETS) + [d for d in dict.fromkeys(measured) if d not in paper.DATASETS]


def _dataset_header(datasets: Iterable[str]) -> list[str]:
    labels = {**paper.DATASET_LABELS, "pheme": "PHEME (acc/F1)"}
    return [labels.get(d, d) for d in datasets]


def _rows_by_dataset(
    analysis: Analysis, row_keys: Sequence, label: Callable[[object], str]
) -> list[Table]:
    by_key = _by_key(analysis)
    datasets = _datasets(analysis)
    measured = {k[1] for k in by_key}
    header = [""]
    for d, label_text in zip(datasets, _dataset_header(datasets), strict=True):
        header += [label_text, *([f"{label_text}: effect"] if d in measured else [])]
    table = Table(
        title=analysis.matcher.title,
        header=header,
        caption=_caption(analysis, EFFECT_LEGEND),
    )
    for row in row_keys:
        entries = [plain(label(row))]
        for d in datasets:
            key = (row, d)
            entries.append(
                measured_entry(
                    by_key.get(key, []),
                    analysis.matcher.paper.get(key),
                    f1=True,
                    selected=selected_keys(analysis),
                )
            )
            if d in measured:
                entries.append(plain(_effect_of(analysis, by_key.get(key, []))))
        table.rows.append(entries)
    return [table]


def _table2(analysis: Analysis) -> list[Table]:
    measured = [table2_variant(c) for c in analysis.cells]
    rows = list(paper.TABLE2_VARIANTS) + [
        v for v in dict.fromkeys(measured) if v not in paper.TABLE2_VARIANTS
    ]
    return _rows_by_dataset(analysis, rows, lambda v: paper.TABLE2_LABELS.get(v, f"Baseline + {v}"))


def _table4(analysis: Analysis) -> list[Table]:
    measured = {param_int(c.params, "k") for c in analysis.cells} - {None}
    rows = sorted(set(paper.TABLE4_KS) | measured)
    return _rows_by_dataset(analysis, rows, lambda k: f"DropAttack-{k}")


def _table3(analysis: Analysis) -> list[Table]:
    by_key = _by_key(analysis)
    sizes = sorted(set(paper.TABLE3_SIZES) | {k[0] for k in by_key})
    table = Table(
        title=analysis.matcher.title,
        header=["Method", *(f"{s:,}" for s in sizes)],
        caption=_caption(analysis, "Improvement: DropAttack-3 mean minus standard mean."),
    )
    labels = {"standard": "Standard Training", "dropattack3": "DropAttack-3 Training"}
    for variant in paper.TABLE3_VARIANTS:
        row = [plain(labels[variant])]
        for size in sizes:
            key = (size, variant)
            row.append(
                measured_entry(
                    by_key.get(key, []), paper.TABLE3.get(key), selected=selected_keys(analysis)
                )
            )
        table.rows.append(row)
    improvement = [plain("Improvement ↑")]
    for size in sizes:
        std, da = by_key.get((size, "standard")), by_key.get((size, "dropattack3"))
        p_std, p_da = paper.TABLE3.get((size, "standard")), paper.TABLE3.get((size, "dropattack3"))
        measured = num(_best(da).mean - _best(std).mean) if std and da else DASH
        reported = num(p_da.acc - p_std.acc) if p_std and p_da else DASH
        improvement.append(plain(f"{measured} ({reported})"))
    table.rows.append(improvement)
    effect = [plain("Effect, 95% CI (paper): verdict")]
    effect += [plain(_effect_of(analysis, by_key.get((s, "dropattack3"), []))) for s in sizes]
    table.rows.append(effect)
    table.caption = _caption(
        analysis,
        "Improvement: DropAttack-3 mean minus standard mean. "
        + EFFECT_LEGEND.replace(
            "the row's baseline in the same paper table", "standard training at the same size"
        ),
    )
    return [table]


def _attack_label(cell: CellStats, model: str) -> str:
    aliases = attack_set(cell.params)
    if not aliases or cell.params.get("method") == "standard":
        return model
    eps, p = param_float(cell.params, "eps"), param_float(cell.params, "p")
    return f"{model} + DropAttack[{', '.join(aliases)}] (ε={eps:g}, p={p:g})"


def _targets(analysis: Analysis) -> list[Table]:
    by_key = _by_key(analysis)
    name = analysis.matcher.name
    numbers = (
        list(paper.TARGET_TABLES) if name == "tables5to9" else [int(name.removeprefix("table"))]
    )
    tables = []
    for n in numbers:
        rows = paper.TARGET_TABLES[n]
        dataset, model = rows[0].dataset, rows[0].model
        f1 = rows[0].value.f1 is not None
        unit = "Accuracy/F1" if f1 else "Accuracy"
        table = Table(
            title=f"Table {n}: attacked layers on {paper.DATASET_LABELS[dataset]} ({model})",
            header=[
                "Method",
                f"{unit}: measured (paper)",
                f"Effect vs {model}: measured [95% CI] (paper): verdict",
                "Paper − measured",
                "Verdict",
            ],
            caption=_caption(
                analysis, f"Rows after the paper's are measured only. {EFFECT_LEGEND}"
            ),
        )
        known = set()
        for row in rows:
            key = tuple(round(v, 6) if isinstance(v, float) else v for v in row.key)
            known.add(key)
            cells = by_key.get(key, [])
            table.rows.append(_target_row(row.label, cells, row.value, f1, selected_keys(analysis)))
            table.rows[-1].insert(2, plain(_effect_of(analysis, cells)))
        for key, cells in by_key.items():
            if key[0] == dataset and key not in known:
                label = _attack_label(cells[0], model)
                table.rows.append(_target_row(label, cells, None, f1, selected_keys(analysis)))
                table.rows[-1].insert(2, plain(_effect_of(analysis, cells)))
        tables.append(table)
    return tables


def _target_row(
    label: str,
    cells: list[CellStats],
    value: paper.PaperValue | None,
    f1: bool,
    selected: frozenset[str] = frozenset(),
) -> list[Entry]:
    cell = _best(cells) if cells else None
    v = cell.verdict if cell else None
    return [
        plain(label),
        measured_entry(cells, value, f1=f1, selected=selected),
        plain(num(v.diff) if v else DASH),
        plain(v.text if v else DASH),
    ]


LAYOUTS: dict[str, Callable[[Analysis], list[Table]]] = {
    "table10": _table10,
    "table2": _table2,
    "table3": _table3,
    "table4": _table4,
    **{f"table{n}": _targets for n in paper.TARGET_TABLES},
    "tables5to9": _targets,
}


def layout_tables(analysis: Analysis) -> list[Table]:
    """The paper's layout of the analysed table; none for generic sweeps."""
    layout = LAYOUTS.get(analysis.matcher.name)
    return layout(analysis) if layout else []


# what every configuration of a task shares, said in the report's scale table
_HIDDEN = {"attacked", "val_size", "test_size", "data_root", "data_source", "data_split"}


#: What the report's cost column (``seconds``) holds; see ``aggregate.train_seconds``.
SECONDS_MEANING = (
    "the mean training time of a trial (its epochs' training and validation passes; set-up, "
    "checkpoints and logging excluded, so a worker's first trial is not charged its start-up)"
)


def varying_params(cells: Sequence[CellStats]) -> list[str]:
    """Parameters whose value differs between cells (what distinguishes the configurations)."""
    names = list(dict.fromkeys(k for c in cells for k in c.params if k not in _HIDDEN))
    varying = [k for k in names if len({c.params.get(k) for c in cells}) > 1]
    return varying or [k for k in ("task", "method") if k in names]


def describe(cell: CellStats, names: Sequence[str]) -> str:
    return ", ".join(f"{k}={cell.params.get(k, DASH) or '∅'}" for k in names)


def cells_table(analysis: Analysis, pareto_keys: set[str]) -> Table:
    """Every measured cell, best first: statistics, paper number, verdict and cost."""
    names = varying_params(analysis.cells)
    gpu = analysis.has_gpu
    chosen = selected_keys(analysis)
    header = [
        "#",
        *names,
        "n",
        f"mean {analysis.selection_metric}",
        f"mean ({analysis.unit or analysis.metric})",
        "std",
        "95% CI",
        "paper",
        "paper − mean",
        "verdict",
        "seconds",
        *(["GPU-seconds"] if gpu else []),
        "Pareto",
    ]
    table = Table(
        title=f"All configurations by {analysis.metric}",
        header=header,
        caption=(
            "Statistics over the seeds of each configuration (FINISHED runs only); std is the "
            "sample standard deviation; 95% CI is Student's t interval of the mean, clipped to "
            "the metric's range (0 to 100 for accuracy and F1); "
            f"seconds is {SECONDS_MEANING}; Pareto marks the "
            "configurations no other one beats on both accuracy and cost within its task. "
            f"Ranked by the test mean for reading only; ◆ marks each task's configuration "
            f"selected on validation (highest mean {analysis.selection_metric})."
        ),
    )
    ranked = sorted(analysis.cells, key=lambda c: (-c.mean, c.key))
    for i, cell in enumerate(ranked, 1):
        v = cell.verdict
        ci = f"[{num(cell.ci95[0])}, {num(cell.ci95[1])}]" if cell.ci95 else DASH
        verdict_text = v.text if v else (NO_VERDICT if cell.n < 2 and cell.paper else DASH)
        row = [
            plain(i),
            *(plain(cell.params.get(k, DASH) or "∅") for k in names),
            plain(cell.n),
            plain(num(cell.selection_mean, 4)),
            plain(num(cell.mean) + (SELECTED if cell.key in chosen else ""), cell.key in chosen),
            plain(num(cell.std)),
            plain(ci),
            plain(num(cell.paper_metric)),
            plain(num(v.diff) if v else DASH),
            plain(verdict_text),
            plain(num(cell.mean_seconds, 1)),
            *([plain(num(cell.mean_gpu_seconds, 1))] if gpu else []),
            plain("★" if cell.key in pareto_keys else ""),
        ]
        table.rows.append(row)
    return table


def comparison_table(analysis: Analysis) -> Table:
    """Each task's configuration selected on validation against its baseline, on test."""
    table = Table(
        title=f"Selected configuration vs baseline on {analysis.metric} (paired or Welch's t-test)",
        header=[
            "task",
            f"selected (best mean {analysis.selection_metric})",
            "mean ± std (n)",
            "baseline",
            "baseline mean ± std (n)",
            "difference",
            "95% CI (test)",
            "t",
            "p (raw)",
            "p (Holm)",
            "configurations compared",
            "note",
        ],
        caption=(
            "Paired t on the per-seed differences when the selected configuration and its "
            "baseline share at least 3 seeds (scipy.stats.ttest_rel), else "
            "scipy.stats.ttest_ind(selected, baseline, equal_var=False); two-sided. The raw "
            "p-value treats the selected configuration as the only one tested; the Holm p-value "
            "adjusts it for every configuration of the task compared with a baseline (any of "
            "them could have been selected)."
        ),
    )
    for c in analysis.comparisons:
        base = c.baseline
        table.rows.append(
            [
                plain(c.task or DASH),
                plain(c.best.name),
                plain(f"{mean_std(c.best)} ({c.best.n})", bold=True),
                plain(base.name if base else DASH),
                plain(f"{mean_std(base)} ({base.n})" if base else DASH),
                plain(num(c.difference)),
                plain(f"{ci_text(c.ci95)} ({test_text(c.diff)})" if c.diff else DASH),
                plain(num(c.t, 3)),
                plain(p_text(c.pvalue)),
                plain(p_text(c.pvalue_adjusted)),
                plain(c.comparisons),
                plain(c.note),
            ]
        )
    return table


def confirmation_table(analysis: Analysis, confirmation: Confirmation) -> Table:
    """The confirmed configurations against their baselines, on the fresh seeds only."""
    table = Table(
        title=f"Confirmation on fresh seeds: {analysis.metric} (paired or Welch's t-test)",
        header=[
            "task",
            "configuration",
            "mean ± std (n)",
            "baseline mean ± std (n)",
            "difference",
            "95% CI (test)",
            "p (raw)",
            "p (Holm, confirmed configurations)",
        ],
        caption=(
            "Runs of the confirmation sweep only (seeds the sweep did not use). The selected "
            "configuration (◆) was fixed before these runs, so its raw p-value needs no "
            "adjustment; the Holm p-value adjusts over the configurations confirmed per task."
        ),
    )
    chosen = selected_keys(analysis)
    for task, rows in confirmation.by_task.items():
        for r in rows:
            table.rows.append(
                [
                    plain(task or DASH),
                    plain(r.cell.name + (SELECTED if r.cell.key in chosen else "")),
                    plain(f"{mean_std(r.cell)} ({r.cell.n})", bold=r.cell.key in chosen),
                    plain(f"{mean_std(r.baseline)} ({r.baseline.n})"),
                    plain(num(r.diff.value)),
                    plain(f"{ci_text(r.diff.ci95)} ({test_text(r.diff)})"),
                    plain(p_text(r.diff.pvalue)),
                    plain(p_text(r.pvalue_adjusted)),
                ]
            )
    return table


def pareto_table(analysis: Analysis) -> Table:
    """The accuracy-versus-cost Pareto set of each task, cheapest first."""
    gpu = analysis.has_gpu
    table = Table(
        title="Accuracy versus cost: Pareto set",
        header=[
            "task",
            "configuration",
            "mean seconds",
            *(["mean GPU-seconds"] if gpu else []),
            f"mean {analysis.metric}",
        ],
        caption=(
            "Configurations no other one beats on both mean seconds and mean metric; seconds "
            f"is {SECONDS_MEANING}."
        ),
    )
    for task, front in analysis.fronts.items():
        for cell in front:
            table.rows.append(
                [
                    plain(task or DASH),
                    plain(cell.name),
                    plain(num(cell.mean_seconds, 1)),
                    *([plain(num(cell.mean_gpu_seconds, 1))] if gpu else []),
                    plain(mean_std(cell)),
                ]
            )
    return table


def failures_table(analysis: Analysis) -> Table | None:
    """Failed runs and finished runs without the metric, with their errors; None if none."""
    rows = [
        [plain(r.run_id), plain("FAILED"), plain(r.cell), plain(r.error or "(no error tag)")]
        for r in analysis.failed
    ]
    rows += [
        [plain(r.run_id), plain("FINISHED"), plain(r.cell), plain(f"no metric {analysis.metric}")]
        for r in analysis.missing_metric
    ]
    if not rows:
        return None
    return Table(
        title="Runs not aggregated",
        header=["run", "status", "configuration", "reason"],
        rows=rows,
        caption="These runs are counted but left out of every statistic above.",
    )
