"""The extension study's section: DropAttack's groupings x K against the baseline, at their cost.

A sweep whose DropAttack cells vary ``groups`` (the ``extension`` spec, or any copy of it) gets,
per task, one row per configuration: grouping, K, forward/backward passes per step (the trial's
``passes`` param), the metric's mean ± std with its 95% t-interval, the difference to the
paper's grouping at the same K and to the baseline (Welch 95% intervals, Bonferroni-adjusted for
the number of differences shown), the mean trial seconds and membership of the
accuracy-versus-cost Pareto set; then a figure of accuracy against passes and seconds, and the
answer to "is the cheaper grouping as good?" in words. The configurations are fixed by the
spec, not selected on the data, so their test metric compares without a winner's curse.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from scipy import stats

from sweeps.report import plots
from sweeps.report.aggregate import CellStats, pareto, welch_stats
from sweeps.report.analysis import Analysis
from sweeps.report.figures import Figure, baseline_of, task_suffix
from sweeps.report.match import param_int
from sweeps.report.render import Block, Bullets, Heading, Text
from sweeps.report.tables import DASH, SECONDS_MEANING, Table, num, plain

__all__ = [
    "EXTENSION_TABLES",
    "Difference",
    "Section",
    "StudyRow",
    "applies",
    "difference",
    "insert",
    "section",
    "study_rows",
]

EXTENSION_TABLES = frozenset({"extension"})
GROUPINGS = ("paper", "per_target", "joint")  # dropattack.attack.GROUP_MODES, in cost order
_DEFAULT_GROUPS = "paper"
ANCHOR = "All configurations"  # the section goes before this heading of the report


@dataclass(frozen=True)
class Difference:
    """``a - b`` of two cells' means with a Welch t-interval at ``level``."""

    diff: float
    ci: tuple[float, float] | None
    level: float
    n: tuple[int, int]

    def contains_zero(self) -> bool | None:
        return None if self.ci is None else self.ci[0] <= 0.0 <= self.ci[1]

    def text(self) -> str:
        if self.ci is None:
            return f"{self.diff:+.2f} (no interval: n < 2 on a side)"
        return f"{self.diff:+.2f} [{self.ci[0]:+.2f}, {self.ci[1]:+.2f}]"


def difference(a: CellStats, b: CellStats, level: float = 0.95) -> Difference:
    """Mean of ``a`` minus mean of ``b``, with a Welch (unequal variance) t-interval."""
    diff = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Difference(diff, None, level, (a.n, b.n))
    _, _, df, se = welch_stats(a.values, b.values)
    if se == 0:
        return Difference(diff, (diff, diff), level, (a.n, b.n))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return Difference(diff, (diff - half, diff + half), level, (a.n, b.n))


def _interval(cell: CellStats, level: float = 0.95) -> tuple[float, float] | None:
    if cell.n < 2:
        return None
    half = float(stats.t.ppf(0.5 + level / 2, cell.n - 1)) * cell.std / math.sqrt(cell.n)
    return cell.mean - half, cell.mean + half


@dataclass
class StudyRow:
    """One configuration of the study: a DropAttack grouping at one K, or the baseline."""

    cell: CellStats
    groups: str  # a grouping, or "baseline"
    k: int | None
    passes: int | None
    ci: tuple[float, float] | None
    vs_paper: Difference | None = None  # against the paper's grouping at the same K
    vs_baseline: Difference | None = None
    pareto: bool = False

    @property
    def label(self) -> str:
        return "baseline" if self.k is None else f"{self.groups} K={self.k}"


def _is_dropattack(cell: CellStats) -> bool:
    return cell.params.get("method", "dropattack") == "dropattack" and not cell.is_baseline


def _groups(cell: CellStats) -> str:
    return cell.params.get("groups") or _DEFAULT_GROUPS


def applies(analysis: Analysis) -> bool:
    """An extension sweep: its paper table says so, or its DropAttack cells vary ``groups``."""
    if analysis.sweep.paper_table in EXTENSION_TABLES:
        return True
    return len({_groups(c) for c in analysis.cells if _is_dropattack(c)}) > 1


def study_rows(cells: Sequence[CellStats], level: float = 0.95) -> tuple[list[StudyRow], int]:
    """The study's rows of one task (within each K cheapest first, then the baseline) and the
    number of differences shown.

    The differences form two families, each grouping against the paper's at the same K, and
    each configuration against the baseline; the intervals of a family are Bonferroni-adjusted
    to hold together at ``level``.
    """
    base_cells = [c for c in cells if c.is_baseline]
    base = max(base_cells, key=lambda c: c.n) if base_cells else None
    rows = []
    for c in cells:
        if _is_dropattack(c):
            k = param_int(c.params, "k") or 1
            passes = param_int(c.params, "passes")
            rows.append(StudyRow(c, _groups(c), k, passes, _interval(c, level)))
    papers = {r.k: r for r in rows if r.groups == "paper"}
    vs_paper = [r for r in rows if r.groups != "paper" and r.k in papers]
    for r in vs_paper:
        r.vs_paper = difference(r.cell, papers[r.k].cell, _adjusted(level, len(vs_paper)))
    if base is not None:
        for r in rows:
            r.vs_baseline = difference(r.cell, base, _adjusted(level, len(rows)))
    order = {g: i for i, g in enumerate(GROUPINGS)}
    rows.sort(key=lambda r: (r.k, r.passes or 0, order.get(r.groups, len(order)), r.groups))
    compared = len(vs_paper) + (len(rows) if base is not None else 0)
    if base is not None:
        passes = param_int(base.params, "passes") or 1
        rows.append(StudyRow(base, "baseline", None, passes, _interval(base, level)))
    front = {c.key for c in pareto([r.cell for r in rows])}
    for r in rows:
        r.pareto = r.cell.key in front
    return rows, compared


def _adjusted(level: float, m: int) -> float:
    """Bonferroni: each of ``m`` intervals at this level, so that all hold at ``level``."""
    return 1 - (1 - level) / max(m, 1)


def _table(task: str, rows: list[StudyRow], compared: int, analysis: Analysis) -> Table:
    unit = analysis.unit or analysis.metric
    n_paper = sum(1 for r in rows if r.vs_paper is not None)
    n_base = sum(1 for r in rows if r.vs_baseline is not None)
    table = Table(
        title=f"{task}: groupings of DropAttack's passes against the baseline",
        header=[
            "grouping",
            "K",
            "passes/step",
            "n",
            f"mean ± std ({unit})",
            "95% CI",
            "− paper grouping, same K",
            "− baseline",
            "mean seconds",
            "Pareto",
        ],
        caption=(
            f"{analysis.metric} over seeds; passes/step is the forward/backward passes a "
            "training step costs (1 + K × groups); differences are Welch intervals, "
            f"Bonferroni-adjusted so that the {n_paper} against the paper's grouping hold "
            f"together at 95%, and the {n_base} against the baseline too ({compared} "
            f"comparisons in all); seconds is {SECONDS_MEANING} (noisy on a shared "
            "machine; passes/step is the exact cost); Pareto (★) marks the configurations "
            "no other one beats on both mean seconds and mean accuracy."
        ),
    )
    for r in rows:
        c = r.cell
        table.rows.append(
            [
                plain(r.groups if r.k is not None else "baseline (standard)", bold=r.pareto),
                plain(DASH if r.k is None else r.k),
                plain(DASH if r.passes is None else r.passes),
                plain(c.n),
                plain(num(c.mean) if c.n < 2 else f"{num(c.mean)} ± {num(c.std)}"),
                plain(DASH if r.ci is None else f"[{num(r.ci[0])}, {num(r.ci[1])}]"),
                plain(r.vs_paper.text() if r.vs_paper else DASH),
                plain(r.vs_baseline.text() if r.vs_baseline else DASH),
                plain(num(c.mean_seconds, 1)),
                plain("★" if r.pareto else ""),
            ]
        )
    return table


def _verdict(d: Difference) -> str:
    inside = d.contains_zero()
    if inside is None:
        return "too few seeds for an interval"
    if inside:
        return "no difference this study can detect (the interval contains 0)"
    return "better" if d.diff > 0 else "worse"


def _answer(task: str, rows: list[StudyRow], unit: str) -> list[str]:
    """The question in words: per K, each cheaper grouping against the paper's."""
    lines = []
    by_k: dict[int, list[StudyRow]] = defaultdict(list)
    for r in rows:
        if r.k is not None:
            by_k[r.k].append(r)
    for k, group in sorted(by_k.items()):
        paper_row = next((r for r in group if r.groups == "paper"), None)
        for r in group:
            if r.vs_paper is None or paper_row is None:
                continue
            cost = "cheaper" if (r.passes or 0) < (paper_row.passes or 0) else "dearer"
            if r.passes == paper_row.passes:
                cost = "as costly"
            lines.append(
                f"{task}, K={k}: {r.groups} ({r.passes} passes/step, {cost} than the paper's "
                f"{paper_row.passes}) − paper = {r.vs_paper.text()} {unit}: {_verdict(r.vs_paper)}."
            )
    front = [r.label for r in rows if r.pareto]
    if front:
        lines.append(f"{task}: Pareto set (accuracy against mean seconds): {', '.join(front)}.")
    attacks = [r for r in rows if r.k is not None]
    own = {c.key for c in pareto([r.cell for r in attacks])}
    by_passes = {c.key for c in _pareto_passes(attacks)}
    if own:
        names = ", ".join(r.label for r in attacks if r.cell.key in own)
        lines.append(f"{task}: Pareto set of the DropAttack groupings alone (seconds): {names}.")
    if by_passes:
        names = ", ".join(r.label for r in attacks if r.cell.key in by_passes)
        lines.append(f"{task}: the same against passes per step: {names}.")
    return lines


def _pareto_passes(rows: Sequence[StudyRow]) -> list[CellStats]:
    """Rows no other row beats on both passes per step (fewer) and mean metric (higher)."""
    known = [r for r in rows if r.passes is not None]
    return [
        r.cell
        for r in known
        if not any(
            o.passes <= r.passes
            and o.cell.mean >= r.cell.mean
            and (o.passes < r.passes or o.cell.mean > r.cell.mean)
            for o in known
        )
    ]


def _points(rows: list[StudyRow]) -> list[plots.CostPoint]:
    return [
        plots.CostPoint(
            label=r.label,
            group=r.groups,
            k=r.k,
            passes=r.passes,
            seconds=r.cell.mean_seconds,
            mean=r.cell.mean,
            ci=r.ci,
            pareto=r.pareto,
        )
        for r in rows
    ]


@dataclass
class Section:
    """The study's blocks (tables, figures, answer) and the figures to write beside them."""

    blocks: list[Block] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def section(analysis: Analysis) -> Section:
    """The extension study's section of the report; empty for sweeps it does not apply to."""
    out = Section()
    if not applies(analysis):
        return out
    by_task: dict[str, list[CellStats]] = defaultdict(list)
    for cell in analysis.cells:
        by_task[cell.task].append(cell)
    unit = "points" if analysis.unit == "%" else analysis.metric
    out.blocks.append(Heading("Extension: is the cheaper grouping as good?"))
    out.blocks.append(
        Text(
            "DropAttack-(I-H) spends 1 + K × G forward/backward passes a step on G groups of "
            "targets: the paper's grouping (the input term and the weight term), one group per "
            "tensor (per_target, as the authors' notebooks do) or one joint pass. Each row is "
            "one configuration fixed by the spec (none was selected on these data)."
        )
    )
    answers: list[str] = []
    for task, cells in by_task.items():
        rows, compared = study_rows(cells)
        if not any(r.k is not None for r in rows):
            continue
        out.blocks.append(_table(task or DASH, rows, compared, analysis))
        suffix = task_suffix(task, len(by_task) > 1)
        base = baseline_of(cells)
        out.figures.append(
            Figure(
                f"extension{suffix}.png",
                plots.cost_figure(
                    _points(rows), base, f"{task}: {analysis.metric}", analysis.unit or ""
                ),
                f"Mean {analysis.metric} (95% CI) of each grouping against passes per step "
                f"and mean trial seconds ({task}); the grey band is the baseline's mean ± std; "
                "the line joins the accuracy-versus-seconds Pareto set.",
            )
        )
        answers += _answer(task or DASH, rows, unit)
    out.blocks += out.figures
    if answers:
        out.blocks += [Heading("The answer", 3), Bullets(answers)]
    return out


def insert(blocks: list[Block], study: Section) -> list[Block]:
    """``blocks`` with the study's section before the report's "All configurations"."""
    if not study.blocks:
        return blocks
    at = next(
        (i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.text == ANCHOR),
        len(blocks),
    )
    return [*blocks[:at], *study.blocks, *blocks[at:]]
