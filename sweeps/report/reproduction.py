"""The report's reproduction section: the summary a reader quotes, the scale each task ran at,
every measured effect against the paper's, and their ``report.json`` form.

Computation lives in :mod:`sweeps.report.effects`; this module only lays it out.
"""

from __future__ import annotations

from collections.abc import Sequence

from sweeps.report import render
from sweeps.report.aggregate import DIFFERENT_SCALE, CellStats
from sweeps.report.analysis import Analysis
from sweeps.report.effects import (
    ALPHA,
    EFFECT_VERDICTS,
    NO_EFFECT_VERDICT,
    Effect,
    EffectSet,
    Scale,
)
from sweeps.report.rounds import decides
from sweeps.report.sequential import RULE, Look
from sweeps.report.tables import (
    DASH,
    Table,
    ci_text,
    describe,
    mean_std,
    p_text,
    plain,
    signed,
    test_text,
    varying_params,
)

__all__ = [
    "HOLM_RULE",
    "cell_json",
    "effects_table",
    "scale_table",
    "summary_blocks",
    "summary_json",
]

ALPHA_TEXT = f"{ALPHA:g}"
#: How the multiplicity adjustment enters the verdicts (stated in the report and the README).
HOLM_RULE = (
    f"Rows measured against one baseline are one family. 'The CI excludes 0' means the "
    f"Holm-adjusted p-value of the row's test of a zero difference is below {ALPHA_TEXT}; 'the "
    f"CI excludes the paper's effect' means the Holm-adjusted p-value of the same test of a "
    f"difference equal to the paper's is below {ALPHA_TEXT} (the same adjustment the "
    "report's p-values use). With one row in a family these are the ends of the 95% CI shown."
)
#: Which test a row's interval comes from (stated in the report and the README).
TEST_RULE = (
    "A row and its baseline that share at least 3 seeds are tested on their per-seed "
    "differences (paired t; the seed fixes initialisation, batch order and masks, so the arms "
    "move together, and r is the correlation between them); otherwise the arms are tested as "
    "independent samples (Welch's t)."
)
VERDICT_RULE = (
    "Effect verdicts: reproduced — the CI excludes 0 and holds the paper's effect, or lies "
    "wholly beyond it in the paper's direction; smaller — same direction, the CI lies between 0 "
    "and the paper's effect; not shown — the CI covers 0; opposite — the CI excludes 0 on the "
    "other side. A paper effect of 0 counts as a claimed gain of 0 (a measured gain is "
    "reproduced, a loss opposite)."
)
#: How rows whose seeds were added in rounds are judged (stated when the report has any).
SEQUENTIAL_RULE = (
    "Rows marked 'sequential' got seeds in rounds (`dropattack seeds --run`, or a spec's "
    "`seeds: {initial, max, until: decided}`) and were judged after each round by a "
    f"{RULE}, over a declared maximum of seeds per arm, at level {ALPHA_TEXT} / m for the m "
    "rows against the same baseline: their interval is the rule's repeated confidence "
    "interval at the row's last look (wider than a fixed-sample 95% CI, so that stopping "
    "when it excludes 0 keeps the error rate), and their verdict reads it."
)
_TABLE_LABELS = {"table10": "Table 10", "tables5to9": "Tables 5-9"}


def _table_label(name: str) -> str:
    return _TABLE_LABELS.get(name, name.replace("table", "Table ")) if name else "no paper table"


def _size(value: int | list[int] | None) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, list):
        return ", ".join(f"{v:,}" for v in value)
    return f"{value:,}"


def _share(scale: Scale) -> str:
    """``2,000 training examples (1.8% of the paper's 110,000)``."""
    text = f"{_size(scale.train)} training examples"
    if isinstance(scale.train, int) and isinstance(scale.paper_train, int) and scale.paper_train:
        if scale.train == scale.paper_train:
            return text + " (the paper's size)"
        return (
            text
            + f" ({100 * scale.train / scale.paper_train:.2g}% of the paper's "
            + (f"{scale.paper_train:,})")
        )
    if scale.paper_train is None:
        return text + f" (no paper size for dataset {scale.dataset or '?'})"
    return text + f" (the paper's: {_size(scale.paper_train)})"


def _scale_phrase(scale: Scale) -> str:
    epochs = ", ".join(scale.epochs) or "?"
    return f"{scale.task}: {_share(scale)}, {epochs} epoch{'s' if epochs != '1' else ''}"


def _seeds(rows: Sequence[Effect]) -> str:
    ns = sorted({e.cell.n for e in rows} | {e.baseline.n for e in rows})
    return f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"


def summary_lines(analysis: Analysis) -> list[str]:
    """Per paper table: how many effects were reproduced, smaller, not shown, opposite, and
    at what scale; then how the absolute numbers read."""
    effects = analysis.effects or EffectSet()
    summary = effects.summary()
    if not summary:
        measured = len(effects.rows)
        return [
            f"No measured row has a paper effect to compare with (paper table: "
            f"{analysis.sweep.paper_table or 'none'}); {measured} effect"
            f"{'s' if measured != 1 else ''} against a baseline measured (listed under "
            "'The paper's effects')."
        ]
    lines = []
    for table, counts in summary.items():
        rows = [e for e in effects.judged() if e.table == table]
        verdicts = ", ".join(f"{counts[v]} {v}" for v in EFFECT_VERDICTS)
        if counts[NO_EFFECT_VERDICT]:
            verdicts += f", {counts[NO_EFFECT_VERDICT]} without a test (fewer than 2 runs)"
        scales = "; ".join(_scale_phrase(effects.scales[t]) for t in counts["tasks"])
        lines.append(
            f"{_table_label(table)}: of {counts['rows']} effect{'s' if counts['rows'] != 1 else ''}"
            f" the paper reports, {verdicts} — at {scales}; {_seeds(rows)} runs per configuration."
        )
    judged = [c for c in analysis.cells if c.verdict is not None]
    scaled = sum(1 for c in judged if c.verdict.text == DIFFERENT_SCALE)
    if scaled:
        lines.append(
            f"Absolute numbers: {scaled} of {len(judged)} configurations trained on other data "
            "than the paper's read 'different scale': their accuracies are not the paper's to "
            "match; the effects above are the reproduction's answer."
        )
    return lines


def summary_blocks(analysis: Analysis) -> list:
    """The reproduction summary at the top of the report."""
    return [
        render.Heading("Reproduction summary"),
        render.Bullets(
            [*summary_lines(analysis), VERDICT_RULE, HOLM_RULE, TEST_RULE]
            + ([SEQUENTIAL_RULE] if _any_sequential(analysis) else [])
        ),
    ]


def _any_sequential(analysis: Analysis) -> bool:
    return any(e.sequential is not None for e in (analysis.effects or EffectSet()).rows)


def sequential_text(rule: Look | None) -> str:
    """``sequential: looks at 4, 8 of at most 12 seeds``, or empty for a fixed-sample row."""
    if rule is None:
        return ""
    looks = ", ".join(map(str, rule.looks))
    state = "decided" if decides(rule) else "undecided"
    return f"sequential: looks at {looks} of at most {rule.max_seeds} seeds, {state}"


def sequential_json(rule: Look | None) -> dict | None:
    """A row's ``effect_sequential`` in ``report.json`` (null for a fixed-sample row)."""
    if rule is None:
        return None
    return {
        "rule": RULE,
        "looks": list(rule.looks),
        "max_seeds": rule.max_seeds,
        "alpha": rule.alpha,
        "ci": list(rule.interval),
        "boundary_t": rule.crit,
        "decided": decides(rule),
    }


def scale_table(analysis: Analysis) -> Table:
    """The data each task ran on, beside the paper's Table 1 sizes."""
    table = Table(
        title="Data and scale: what each task ran on, beside the paper's (Table 1)",
        header=[
            "task",
            "dataset",
            "source",
            "train (paper)",
            "val (paper)",
            "test (paper)",
            "train_size",
            "epochs",
            "embedding start (paper)",
            "absolute verdicts",
        ],
        caption=(
            "Sizes are examples per split as the trials logged them (params train_size, "
            "val_size, test_size; older stores: train_size only). When the training data is "
            "not the paper's size the absolute verdict reads 'different scale' and the effect "
            "verdict is the headline. Embedding start: how text models' embeddings began "
            "(param embedding_init: glove, or random without a GloVe file), beside the "
            "paper's (GloVe)."
        ),
    )
    effects = analysis.effects or EffectSet()
    for task, s in effects.scales.items():
        table.rows.append(
            [
                plain(task or DASH),
                plain(s.dataset or DASH),
                plain(s.source or "not recorded"),
                plain(f"{_size(s.train)} ({_size(s.paper_train) if s.paper_train else DASH})"),
                plain(f"{_size(s.val)} ({_size(s.paper_val) if s.paper_val else DASH})"),
                plain(f"{_size(s.test)} ({_size(s.paper_test) if s.paper_test else DASH})"),
                plain(", ".join(s.train_size) or "all"),
                plain(", ".join(s.epochs) or DASH),
                plain(_embedding(s)),
                plain(DIFFERENT_SCALE if s.differs else "at the paper's size", s.differs),
            ]
        )
    return table


def _embedding(s: Scale) -> str:
    """``glove (GloVe)``, ``random (GloVe)``; a dash for image tasks."""
    if not s.embedding:
        return DASH
    return f"{s.embedding} ({s.paper_embedding})" if s.paper_embedding else s.embedding


def effects_table(analysis: Analysis) -> Table:
    """Every measured row against its baseline, with the paper's effect and the verdict."""
    names = varying_params(analysis.cells)
    table = Table(
        title=f"The paper's effects: each row against its baseline on {analysis.metric}",
        header=[
            "paper table",
            "row",
            "mean ± std (n)",
            "baseline",
            "baseline mean ± std (n)",
            "effect",
            "95% CI (sequential: the rule's)" if _any_sequential(analysis) else "95% CI",
            "test (pairs, r)",
            "p (Holm, rows vs this baseline)",
            "paper effect",
            "p vs paper effect (Holm)",
            "verdict",
        ],
        caption=f"{VERDICT_RULE} {HOLM_RULE} {TEST_RULE}"
        + (f" {SEQUENTIAL_RULE}" if _any_sequential(analysis) else ""),
    )
    effects = analysis.effects or EffectSet()
    for e in effects.rows:
        table.rows.append(
            [
                plain(_table_label(e.table) if e.table else DASH),
                plain(describe(e.cell, names)),
                plain(f"{mean_std(e.cell)} ({e.cell.n})"),
                plain(describe(e.baseline, names)),
                plain(f"{mean_std(e.baseline)} ({e.baseline.n})"),
                plain(signed(e.value), bold=True),
                plain(ci_text(e.ci95)),
                plain("; ".join(filter(None, (test_text(e.diff), sequential_text(e.sequential))))),
                plain(f"{p_text(e.pvalue_holm)} (m={e.family})"),
                plain(signed(e.paper_effect)),
                plain(p_text(e.paper_pvalue_holm)),
                plain(e.verdict or (e.note if e.paper_effect is not None else DASH), bold=True),
            ]
        )
    return table


_CELL_KEYS = (
    "effect",
    "effect_test",
    "n_pairs",
    "arm_correlation",
    "effect_ci95",
    "paper_effect",
    "effect_verdict",
    "effect_baseline",
    "effect_p_holm",
    "paper_effect_p_holm",
    "effect_family",
    "effect_table",
    "effect_sequential",
)


def cell_json(analysis: Analysis, cell: CellStats) -> dict:
    """A cell's effect keys in ``report.json`` (null for baselines and unmatched rows)."""
    e = analysis.effects.of(cell) if analysis.effects else None
    if e is None:
        return dict.fromkeys(_CELL_KEYS)
    return {
        "effect": e.value,
        "effect_ci95": None if e.ci95 is None else [e.ci95[0], e.ci95[1]],
        "effect_test": e.diff.test,
        "n_pairs": e.diff.n_pairs,
        "arm_correlation": e.diff.correlation,
        "paper_effect": e.paper_effect,
        "effect_verdict": e.verdict,
        "effect_baseline": e.baseline.key,
        "effect_p_holm": e.pvalue_holm,
        "paper_effect_p_holm": e.paper_pvalue_holm,
        "effect_family": e.family,
        "effect_table": e.table or None,
        "effect_sequential": sequential_json(e.sequential),
    }


def summary_json(analysis: Analysis) -> dict:
    """``effect_summary``: per paper table, the counts of each verdict and each task's scale."""
    effects = analysis.effects or EffectSet()
    out = {}
    for table, counts in effects.summary().items():
        out[table] = {
            **{v: counts[v] for v in (*EFFECT_VERDICTS, NO_EFFECT_VERDICT)},
            "rows": counts["rows"],
            "alpha": ALPHA,
            "adjustment": "holm",
            "scale": {
                t: {
                    "train": effects.scales[t].train,
                    "paper_train": effects.scales[t].paper_train,
                    "different_scale": effects.scales[t].differs,
                }
                for t in counts["tasks"]
            },
        }
    return out
