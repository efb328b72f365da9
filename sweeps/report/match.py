"""Which paper number a measured configuration corresponds to: one matcher per paper table.

A matcher turns a cell's parameters into the key its paper table is indexed by, and says which
cells are the table's baseline (what the best configuration is tested against). The registry
:data:`MATCHERS` is keyed by the parent run's ``dropattack.paper_table`` tag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from sweeps.report import paper
from sweeps.report.paper import PaperValue

__all__ = [
    "MATCHERS",
    "Matcher",
    "attack_set",
    "dataset_of",
    "fit_datasets",
    "matcher_for",
    "param_float",
    "param_int",
    "table2_variant",
]

_DIGITS = 6
_DATASET_ALIASES = {"cifar": "cifar10", "cifar-10": "cifar10", "ag": "agnews", "ag_news": "agnews"}
_INPUT_ALIASES = frozenset({"Embedding", "Input"})


class Configured(Protocol):
    """A measured configuration: its parameters (strings, as MLflow stores them) and variant."""

    params: Mapping[str, str]
    variant: str


def param_float(params: Mapping[str, str], name: str) -> float | None:
    """A parameter as a float rounded for matching; None when absent or not a number."""
    try:
        return round(float(params[name]), _DIGITS)
    except (KeyError, TypeError, ValueError):
        return None


def param_int(params: Mapping[str, str], name: str) -> int | None:
    value = param_float(params, name)
    return None if value is None else int(value)


def attack_set(params: Mapping[str, str]) -> tuple[str, ...]:
    """The attacked paper aliases of a run (``attack`` param, ';'-joined), empty for none."""
    return tuple(a for a in params.get("attack", "").split(";") if a)


def dataset_of(params: Mapping[str, str]) -> str:
    """The paper dataset of a run: its ``dataset`` param, else the task name's first word.

    Task names start with the dataset (``imdb-lstm``, ``cifar10-vgg16``).
    """
    name = params.get("dataset") or params.get("task", "")
    head = name.lower().replace("_", "-").split("-")[0]
    return _DATASET_ALIASES.get(head, head)


def _method(params: Mapping[str, str]) -> str:
    return params.get("method", "")


def table2_variant(cell: Configured) -> str:
    """The Table 2 row of a cell: its variant tag, else derived from its method and attack set."""
    if cell.variant in paper.TABLE2_VARIANTS:
        return cell.variant
    method = _method(cell.params)
    if method == "standard":
        return "baseline"
    if method == "dropattack":
        return "dropattack_i" if set(attack_set(cell.params)) <= _INPUT_ALIASES else "dropattack_ih"
    return method


def _rounded(table: Mapping[tuple, PaperValue]) -> dict[tuple, PaperValue]:
    def r(v):
        return round(v, _DIGITS) if isinstance(v, float) else v

    return {tuple(r(v) for v in key): value for key, value in table.items()}


@dataclass(frozen=True)
class Matcher:
    """How one paper table is matched: its numbers, the key of a cell, and its baseline."""

    name: str
    title: str
    paper: Mapping[tuple, PaperValue] = field(default_factory=dict)
    key: Callable[[Configured], tuple | None] = lambda cell: None
    is_baseline: Callable[[Configured], bool] = lambda cell: False
    datasets: frozenset[str] = frozenset()  # the paper table's datasets; empty: any

    def paper_value(self, cell: Configured) -> PaperValue | None:
        key = self.key(cell)
        return None if key is None else self.paper.get(key)


def _no_attack(cell: Configured) -> bool:
    return _method(cell.params) == "standard" or not attack_set(cell.params)


def _generic_baseline(cell: Configured) -> bool:
    method = _method(cell.params)
    if method == "standard":
        return True
    return method == "dropattack" and (
        not attack_set(cell.params) or param_float(cell.params, "p") == 0.0
    )


def _table10_key(cell: Configured) -> tuple | None:
    eps, p = param_float(cell.params, "eps"), param_float(cell.params, "p")
    return None if eps is None or p is None else (eps, p)


def _table3_key(cell: Configured) -> tuple | None:
    size = param_int(cell.params, "train_size")
    method = _method(cell.params)
    variant = {"standard": "standard", "dropattack": "dropattack3"}.get(method)
    return None if size is None or variant is None else (size, variant)


def _table4_key(cell: Configured) -> tuple | None:
    k = param_int(cell.params, "k")
    return None if k is None else (k, dataset_of(cell.params))


def _targets_key(cell: Configured) -> tuple:
    dataset = dataset_of(cell.params)
    if _no_attack(cell):
        return (dataset, "", None, None)
    return (
        dataset,
        paper.targets_key(attack_set(cell.params)),
        param_float(cell.params, "eps"),
        param_float(cell.params, "p"),
    )


def _targets_matcher(tables: tuple[int, ...]) -> Matcher:
    rows = [row for n in tables for row in paper.TARGET_TABLES[n]]
    names = ", ".join(str(n) for n in tables)
    return Matcher(
        name=f"table{tables[0]}" if len(tables) == 1 else "tables5to9",
        title=f"Table{'s' if len(tables) > 1 else ''} {names}: attacked layers",
        paper=_rounded({row.key: row.value for row in rows}),
        key=_targets_key,
        is_baseline=_no_attack,
        datasets=frozenset(row.dataset for row in rows),
    )


MATCHERS: dict[str, Matcher] = {
    "table10": Matcher(
        name="table10",
        title="Table 10: perturbation coefficient ε × attack probability p (IMDB, K=1)",
        paper=_rounded(paper.TABLE10),
        key=_table10_key,
        is_baseline=lambda cell: (
            _method(cell.params) == "standard" or param_float(cell.params, "p") == 0.0
        ),
        datasets=frozenset({"imdb"}),
    ),
    "table2": Matcher(
        name="table2",
        title="Table 2: methods × datasets",
        paper=paper.TABLE2,
        key=lambda cell: (table2_variant(cell), dataset_of(cell.params)),
        is_baseline=lambda cell: table2_variant(cell) == "baseline",
        datasets=frozenset(paper.DATASETS),
    ),
    "table3": Matcher(
        name="table3",
        title="Table 3: IMDB training-set size, standard vs DropAttack-3",
        paper=paper.TABLE3,
        key=_table3_key,
        is_baseline=lambda cell: _method(cell.params) == "standard",
        datasets=frozenset({"imdb"}),
    ),
    "table4": Matcher(
        name="table4",
        title="Table 4: DropAttack-K, number of forward-backward passes K",
        paper=paper.TABLE4,
        key=_table4_key,
        is_baseline=lambda cell: param_int(cell.params, "k") == 1,
        datasets=frozenset(paper.DATASETS),
    ),
    **{f"table{n}": _targets_matcher((n,)) for n in paper.TARGET_TABLES},
    "tables5to9": _targets_matcher(tuple(paper.TARGET_TABLES)),
    "generic": Matcher(name="generic", title="Configurations", is_baseline=_generic_baseline),
}


def matcher_for(paper_table: str) -> Matcher:
    """The matcher of a ``dropattack.paper_table`` tag; the generic one for search, quickstart,
    figure2 or anything unknown (those have no paper numbers to match)."""
    return MATCHERS.get(paper_table, MATCHERS["generic"])


def fit_datasets(matcher: Matcher, datasets: Iterable[str]) -> tuple[Matcher, str]:
    """``matcher`` for a sweep of ``datasets``, and a warning when some are not its table's.

    Cells of another dataset get no paper number (the table's numbers are about other data)
    and the generic baseline rule (standard training, or DropAttack that perturbs nothing);
    when no dataset is the table's, the generic matcher replaces the table's altogether.
    """
    measured = list(dict.fromkeys(datasets))
    foreign = [d for d in measured if matcher.datasets and d not in matcher.datasets]
    if not foreign:
        return matcher, ""
    theirs = ", ".join(paper.DATASET_LABELS.get(d, d) for d in sorted(matcher.datasets))
    warning = (
        f"paper_table {matcher.name} is the paper's {theirs} table, but this sweep ran on "
        f"{', '.join(foreign)}: those configurations are shown without the paper's numbers "
        "and tested against the generic baseline (method standard, or DropAttack with no "
        'target or p = 0); use paper_table: "" or a table of that dataset'
    )
    if len(foreign) == len(measured):
        return MATCHERS["generic"], warning

    def key(cell: Configured) -> tuple | None:
        return None if dataset_of(cell.params) in foreign else matcher.key(cell)

    def is_baseline(cell: Configured) -> bool:
        if dataset_of(cell.params) in foreign:
            return _generic_baseline(cell)
        return matcher.is_baseline(cell)

    return replace(matcher, key=key, is_baseline=is_baseline), warning
