"""The paper's effects against the measured effects, and the scale each task ran at.

Every table of the paper compares rows with a baseline of the same table (Table 2: methods
against the baseline; Table 3: DropAttack-3 against standard training at each size; Table 4:
K against K = 1; Tables 5-9: attacked layers against the plain model; Table 10: each (ε, p)
against p = 0). The paper prints no standard deviations, so its *effects*, the differences
of its numbers, are what a reproduction can test at any scale. For each measured row with a
baseline this module gives:

- the measured effect against the row's baseline with its 95% interval
  (:func:`sweeps.report.aggregate.difference`): the mean of the per-seed differences with a
  paired t interval when the row and its baseline share at least three seeds (a seed fixes a
  trial's initialisation, batch order and masks, so the arms are paired by it), else the
  difference of means with Welch's interval;
- the paper's effect: the same difference of the paper's numbers;
- a verdict (:func:`effect_verdict`): ``reproduced``, ``smaller``, ``not shown`` or
  ``opposite``.

Multiplicity: the rows measured against one baseline cell are one family. Whether the interval
"excludes 0" is decided by the Holm-adjusted p-value of the row's test (paired or Welch) of a
zero difference (the report's adjustment, :func:`sweeps.report.aggregate.holm`), and whether
it "excludes the paper's effect" by the Holm-adjusted p-value of the same test of a difference
equal to the paper's, both at 0.05. With one row in the family these are exactly the ends of the 95%
interval.

Scale (:class:`Scale`): what data each task ran on (from the trial runs' params), beside the
paper's Table 1 sizes. When a row's training data is not the paper's size, its absolute verdict
reads ``different scale`` instead of ``not reproduced``, and the effect verdict is the headline.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sweeps.report import paper
from sweeps.report.aggregate import (
    CellStats,
    Difference,
    baseline_of,
    difference,
    holm,
    metric_scale,
)
from sweeps.report.match import Matcher, dataset_of, param_int
from sweeps.report.sequential import Look

__all__ = [
    "ALPHA",
    "EFFECT_VERDICTS",
    "NO_EFFECT_VERDICT",
    "Effect",
    "EffectSet",
    "Scale",
    "effect_verdict",
    "measure",
    "paper_table_of",
]

ALPHA = 0.05
#: How the paper's text models start their embeddings: the authors' notebooks load GloVe
#: (glove.6B.300d.txt) with ``nn.Embedding.from_pretrained(..., freeze=False)``.
PAPER_EMBEDDING = "GloVe"
#: The effect verdicts, in the order the summary counts them.
EFFECT_VERDICTS = ("reproduced", "smaller", "not shown", "opposite")
#: Counted beside them: rows with a paper effect that no test could judge (n < 2, zero spread).
NO_EFFECT_VERDICT = "no verdict"


def _sign(x: float) -> int:
    """+1 or -1; a zero paper effect counts as +1 (see :func:`effect_verdict`)."""
    return -1 if x < 0 else 1


def effect_verdict(
    effect: float, paper_effect: float, excludes_zero: bool, excludes_paper: bool
) -> str:
    """The verdict on a measured effect against the paper's effect (the report's definitions).

    ``excludes_zero``/``excludes_paper``: whether the measured interval (after the family's
    Holm adjustment) excludes 0 / the paper's effect.

    - ``not shown``: the interval covers 0;
    - ``opposite``: it excludes 0 on the other side of 0 than the paper's effect;
    - ``reproduced``: it excludes 0 on the paper's side and either holds the paper's effect or
      lies wholly beyond it (the measured effect is at least as large in the paper's
      direction);
    - ``smaller``: it excludes 0 on the paper's side and lies wholly between 0 and the paper's
      effect.

    A paper effect of exactly 0 (the paper printed the same number twice) has the direction of
    the paper's claim, an improvement: it counts as positive, so a measured gain reads
    ``reproduced`` (at least as large as the paper's 0), a measured loss ``opposite``, and
    ``smaller`` cannot happen.
    """
    if not excludes_zero:
        return "not shown"
    if _sign(effect) != _sign(paper_effect):
        return "opposite"
    if not excludes_paper or abs(effect) > abs(paper_effect):
        return "reproduced"
    return "smaller"


@dataclass(frozen=True)
class Effect:
    """One measured row against its baseline in the same paper table, in the report unit.

    ``pvalue_holm``: the row's test's p of a zero difference, Holm-adjusted over the ``family`` rows
    measured against the same baseline. ``paper_pvalue_holm``: its p of a difference equal
    to the paper's effect, Holm-adjusted over the rows of that family with a paper effect.
    """

    cell: CellStats
    baseline: CellStats
    diff: Difference
    table: str  # the paper table the row belongs to ("table7"), "" for none
    paper_effect: float | None = None
    paper_pvalue: float | None = None
    pvalue_holm: float | None = None
    paper_pvalue_holm: float | None = None
    family: int = 1
    verdict: str | None = None
    note: str = ""
    #: the group-sequential rule at the row's last look, when seeds were added in rounds
    #: (:mod:`sweeps.report.rounds`): its interval and ``verdict`` replace the fixed-sample ones
    sequential: Look | None = None

    @property
    def value(self) -> float:
        return self.diff.value

    @property
    def ci95(self) -> tuple[float, float] | None:
        """The row's interval: the sequential rule's at its last look, else the 95% one."""
        return self.sequential.interval if self.sequential is not None else self.diff.ci95


@dataclass(frozen=True)
class Scale:
    """The data one task ran on, beside the paper's Table 1 sizes.

    Sizes are ints when every configuration of the task agrees, else sorted lists (Table 3
    varies the training size); None where the runs did not record them (older stores).
    """

    task: str
    dataset: str
    train: int | list[int] | None
    val: int | list[int] | None
    test: int | list[int] | None
    paper_train: int | list[int] | None
    paper_val: int | None
    paper_test: int | None
    source: str | None
    train_size: list[str]
    epochs: list[str]
    vectors: str | None
    differs: bool  # some configuration's training data is not the paper's size
    embedding: str | None = None  # how text embeddings started: glove, random, pretrained
    paper_embedding: str | None = None  # some configuration's training data is not the paper's size

    def as_json(self) -> dict:
        """The ``scale`` object of a task in ``report.json``."""
        return {
            "train": self.train,
            "paper_train": self.paper_train,
            "val": self.val,
            "test": self.test,
            "source": self.source,
            "paper_val": self.paper_val,
            "paper_test": self.paper_test,
            "train_size": self.train_size,
            "epochs": self.epochs,
            "vectors": self.vectors,
            "embedding": self.embedding,
            "paper_embedding": self.paper_embedding,
            "different_scale": self.differs,
        }


@dataclass
class EffectSet:
    """Every measured effect of a sweep and every task's scale."""

    rows: list[Effect] = field(default_factory=list)
    scales: dict[str, Scale] = field(default_factory=dict)

    def of(self, cell: CellStats) -> Effect | None:
        """The effect of ``cell`` against its baseline; None for baselines and unmatched."""
        return next((e for e in self.rows if e.cell.key == cell.key), None)

    def judged(self) -> list[Effect]:
        """Rows with a paper effect (the ones a verdict is about)."""
        return [e for e in self.rows if e.paper_effect is not None]

    def summary(self) -> dict[str, dict]:
        """Per paper table: counts of each effect verdict (and of rows no test could judge),
        and the tasks (their scale is in :attr:`scales`)."""
        out: dict[str, dict] = {}
        for e in self.judged():
            entry = out.setdefault(
                e.table,
                {**dict.fromkeys((*EFFECT_VERDICTS, NO_EFFECT_VERDICT), 0), "rows": 0, "tasks": []},
            )
            entry[e.verdict or NO_EFFECT_VERDICT] += 1
            entry["rows"] += 1
            if e.cell.task not in entry["tasks"]:
                entry["tasks"].append(e.cell.task)
        return dict(sorted(out.items(), key=lambda kv: _table_order(kv[0])))


def _table_order(name: str) -> tuple:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 99, name)


# The baseline row of a paper table, from a row's key (see ``match.MATCHERS``' keys).
_PAPER_BASELINE: dict[str, Callable[[tuple], tuple]] = {
    "table10": lambda key: (key[0], 0.0),
    "table2": lambda key: ("baseline", key[1]),
    "table3": lambda key: (key[0], "standard"),
    "table4": lambda key: (1, key[1]),
    **{
        name: (lambda key: (key[0], "", None, None))
        for name in (*(f"table{n}" for n in paper.TARGET_TABLES), "tables5to9")
    },
}
#: Tables whose baseline may come from another row of the same training: Table 10's p = 0
#: cells are standard training whatever ε is, so another ε's p = 0 cell stands in for a
#: missing one. Elsewhere a row is only measured against its own baseline (Table 3: its size).
_ANY_BASELINE_ROW = frozenset({"table10"})
_DATASET_TABLE = {rows[0].dataset: n for n, rows in paper.TARGET_TABLES.items()}


def paper_table_of(matcher: Matcher, cell: CellStats) -> str:
    """The paper table a cell's row belongs to: the matcher's, split by dataset for the
    appendix tables 5-9; "" for sweeps without a paper table."""
    if matcher.name == "tables5to9":
        n = _DATASET_TABLE.get(dataset_of(cell.params))
        return f"table{n}" if n else ""
    return matcher.name if matcher.name in _PAPER_BASELINE else ""


def _baseline(matcher: Matcher, cell: CellStats, cells: Sequence[CellStats]) -> CellStats | None:
    """The measured baseline of ``cell``: a baseline cell of its task that is the paper
    table's baseline row for it (the most alike, then the most seeds)."""
    bases = [c for c in cells if c.is_baseline and c is not cell and c.task == cell.task]
    rule, key = _PAPER_BASELINE.get(matcher.name), matcher.key(cell)
    if rule is not None and key is not None:
        want = rule(key)
        own = [b for b in bases if matcher.key(b) == want]
        bases = own if own or matcher.name not in _ANY_BASELINE_ROW else bases
    return baseline_of(cell, bases)


def _paper_effect(matcher: Matcher, metric: str, cell: CellStats) -> float | None:
    """The paper's number for ``cell`` minus the paper's number for its baseline row."""
    rule, key = _PAPER_BASELINE.get(matcher.name), matcher.key(cell)
    if rule is None or key is None or metric_scale(metric) != 100.0:
        return None
    row, base = matcher.paper.get(key), matcher.paper.get(rule(key))
    if row is None or base is None:
        return None
    f1 = metric.endswith("_f1")
    a, b = (row.f1, base.f1) if f1 else (row.acc, base.acc)
    return None if a is None or b is None else round(a - b, 6)


def _shifted_pvalue(cell: CellStats, base: CellStats, shift: float) -> float | None:
    """The two-sided p-value of ``difference == shift`` by the row's test (paired or Welch)."""
    d = difference(cell, base, shift)
    return d.pvalue if d.ci95 is not None and d.pvalue is not None else None


def _holm_by(families: Sequence[str | None], pvalues: Sequence[float | None]) -> list:
    """Holm's adjustment within each family (rows of equal key; None: in no family). A row
    no test could judge counts as p = 1 in its family, and its adjusted p stays None."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(families):
        if key is not None:
            groups[key].append(i)
    out: list[float | None] = [None] * len(families)
    for members in groups.values():
        adjusted = holm([1.0 if pvalues[i] is None else pvalues[i] for i in members])
        for i, a in zip(members, adjusted, strict=True):
            out[i] = None if pvalues[i] is None else a
    return out


def _effects(cells: Sequence[CellStats], matcher: Matcher, metric: str) -> list[Effect]:
    rows = []
    for cell in cells:
        if cell.is_baseline:
            continue
        base = _baseline(matcher, cell, cells)
        if base is None:
            continue
        paper_effect = _paper_effect(matcher, metric, cell)
        rows.append(
            Effect(
                cell=cell,
                baseline=base,
                diff=difference(cell, base),
                table=paper_table_of(matcher, cell),
                paper_effect=paper_effect,
                paper_pvalue=(
                    None if paper_effect is None else _shifted_pvalue(cell, base, paper_effect)
                ),
            )
        )
    families = [e.baseline.key for e in rows]
    zero = _holm_by(families, [e.diff.pvalue if e.diff.ci95 else None for e in rows])
    against_paper = _holm_by(
        [e.baseline.key if e.paper_effect is not None else None for e in rows],
        [e.paper_pvalue for e in rows],
    )
    sizes = Counter(families)
    out = []
    for e, p0, pp in zip(rows, zero, against_paper, strict=True):
        verdict, note = None, e.diff.note
        if e.paper_effect is not None and p0 is not None and pp is not None:
            verdict = effect_verdict(e.value, e.paper_effect, p0 < ALPHA, pp < ALPHA)
        elif e.paper_effect is not None and not note:
            note = "no test"
        out.append(
            replace(
                e,
                pvalue_holm=p0,
                paper_pvalue_holm=pp,
                family=sizes[e.baseline.key],
                verdict=verdict,
                note=note,
            )
        )
    return out


def _number(params: dict[str, str], name: str) -> int | None:
    return param_int(params, name)


def _one_or_list(values: Sequence[int | None]) -> int | list[int] | None:
    known = sorted({v for v in values if v is not None})
    if not known:
        return None
    return known[0] if len(known) == 1 else known


def _paper_train(matcher: Matcher, cell: CellStats) -> int | None:
    """The paper's training size for ``cell``'s row: Table 3's subset size, else Table 1's."""
    if matcher.name == "table3":
        key = matcher.key(cell)
        if key is not None:
            return key[0]
    sizes = paper.TABLE1.get(dataset_of(cell.params))
    return sizes[0] if sizes else None


def _cell_train(cell: CellStats) -> int | None:
    return _number(cell.params, "train_size")


def differs(matcher: Matcher, cell: CellStats) -> bool:
    """Whether ``cell`` trained on other data than the paper's row (unknown size: no)."""
    train = _cell_train(cell)
    return train is not None and train != _paper_train(matcher, cell)


def _distinct(cells: Sequence[CellStats], *names: str) -> list[str]:
    values = []
    for c in cells:
        for name in names:
            if c.params.get(name):
                values.append(c.params[name])
                break
    return list(dict.fromkeys(values))


def _scale(matcher: Matcher, task: str, cells: Sequence[CellStats]) -> Scale:
    dataset = dataset_of(cells[0].params)
    table1 = paper.TABLE1.get(dataset)
    sources = _distinct(cells, "data_source", "data_root", "data_dir")
    vectors = _distinct(cells, "vectors")
    text = dataset in paper.TEXT_DATASETS
    embedding = _distinct(cells, "embedding_init") or (["pretrained"] if vectors else [])
    return Scale(
        task=task,
        dataset=dataset,
        train=_one_or_list([_cell_train(c) for c in cells]),
        val=_one_or_list([_number(c.params, "val_size") for c in cells]),
        test=_one_or_list([_number(c.params, "test_size") for c in cells]),
        paper_train=_one_or_list([_paper_train(matcher, c) for c in cells]),
        paper_val=table1[1] if table1 else None,
        paper_test=table1[2] if table1 else None,
        source="; ".join(sources) or None,
        train_size=_distinct(cells, "train_size"),
        epochs=_distinct(cells, "epochs"),
        vectors="; ".join(vectors) or (None if dataset not in paper.TEXT_DATASETS else "random"),
        differs=any(differs(matcher, c) for c in cells),
        embedding="; ".join(embedding) or ("random" if text else None),
        paper_embedding=PAPER_EMBEDDING if text else None,
    )


def measure(cells: Sequence[CellStats], matcher: Matcher, metric: str) -> EffectSet:
    """Every row's effect against its baseline, every task's scale (an analysis keeps them as
    its ``effects``).

    Absolute verdicts of rows trained on other data than the paper's read ``different scale``
    instead of ``not reproduced`` (``Verdict.different_scale``).
    """
    for cell in cells:
        if differs(matcher, cell):
            if cell.verdict is not None:
                cell.verdict = replace(cell.verdict, different_scale=True)
            if cell.f1_verdict is not None:
                cell.f1_verdict = replace(cell.f1_verdict, different_scale=True)
    by_task: dict[str, list[CellStats]] = defaultdict(list)
    for cell in cells:
        by_task[cell.task].append(cell)
    return EffectSet(
        rows=_effects(cells, matcher, metric),
        scales={task: _scale(matcher, task, group) for task, group in by_task.items()},
    )
