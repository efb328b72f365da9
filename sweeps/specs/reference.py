"""The spec reference, ``docs/spec.md``, made from the spec model itself.

Every field of :class:`~sweeps.specs.spec.Spec` and of its parts (``defaults`` and ``trials``
entries, ``search``, ``resources``, a ``space`` range) with its type, default and allowed
values, read from the pydantic models; the tasks and methods from their registries. What a
field means is :data:`MEANING` here. ``tests/sweeps/test_spec_reference.py`` fails when the
file and this module's output differ; regenerate with::

    python -m sweeps.specs.reference            # writes docs/spec.md
    python -m sweeps.specs.reference --check    # exit 1 when docs/spec.md is stale
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sweeps.specs.names import NAME_RULE
from sweeps.specs.spec import (
    ALGORITHMS,
    AXES,
    MAX_SEEDS,
    METRICS,
    PAPER_TABLES,
    SCHEDULERS,
    SYSTEM_METRICS_INTERVAL,
    Range,
    Resources,
    Search,
    SeedRounds,
    Spec,
    TrialFields,
)

__all__ = ["DOC", "MEANING", "render", "main"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec.md"

#: What each field means, keyed ``section.field`` (``spec`` for the top level).
MEANING: dict[str, str] = {
    "spec.name": "the sweep's name: its MLflow experiment and its state folder under runs/",
    "spec.description": "one line for people; not used by the service",
    "spec.paper_table": "which table of the paper the report sets the results beside "
    "(see [paper_table](#paper_table))",
    "spec.defaults": "trial fields every trial shares (see [Trial fields](#trial-fields))",
    "spec.space": "search axes: per field, a list of values (grid), a range `{low, high, log, "
    "step}` (TPE/random) or, for `attack`, a mapping task -> list of alias sets; axes: "
    + ", ".join(f"`{a}`" for a in AXES),
    "spec.trials": "explicit rows (each a set of trial fields), each crossed with the axes it "
    "does not fix; grid searches only",
    "spec.seeds": "the seeds each cell runs with: a list, or a count N for seeds 0..N-1; or "
    "`{initial: N, max: M, until: decided}`: N seeds, then rounds of N more for the rows not "
    "yet decided (see [seeds until decided](#seeds-until-decided))",
    "seeds.initial": "seeds every cell runs first (0..N-1), and seeds each round adds",
    "seeds.max": "the declared maximum of seeds per arm: the rule's last look, where a row "
    "that is still undecided stays so",
    "seeds.until": "when a row gets no more seeds: `decided`, its interval under the "
    "group-sequential rule excludes 0 (see [seeds.md](seeds.md))",
    "spec.search": "how trials are chosen and judged (see [search](#search))",
    "spec.resources": "what one trial gets (see [resources](#resources))",
    "spec.keep_checkpoint": "each finished trial logs its best-on-validation weights as "
    "checkpoint/best.pt (what `dropattack landscape` loads); false: metrics only",
    "spec.system_metrics": "MLflow system metrics on each trial's run (CPU, memory; GPU through "
    f"NVML) every {SYSTEM_METRICS_INTERVAL:g} s; a number sets the seconds between samples; "
    "false turns them off. Not part of the spec's hash",
    "trial.task": "the task: a built-in name (`dropattack tasks`), an installed entry point, "
    "or `package.module:factory` from your code (docs/tasks.md)",
    "trial.task_args": "keyword arguments of a `package.module:factory` task's factory",
    "trial.method": "the training method",
    "trial.attack": "DropAttack's (or another attack's) targets: the task's paper aliases "
    '(`Embedding`, `Lstm.ih.w`, `Input`, ...), parameter names or globs; `"A;B"` or a list; '
    "unset: the task's input",
    "trial.eps": "perturbation radius",
    "trial.p": "attack probability: DropAttack perturbs each element of a target with "
    "probability p (p = 0: nothing is perturbed)",
    "trial.k": "ascent steps K (DropAttack-K)",
    "trial.groups": "how DropAttack groups its targets: `paper` (inputs, then weights), "
    "`per_target`, `joint`",
    "trial.step": "DropAttack's step: `paper` (Algorithms 1-2 as printed) or `notebook` (the "
    "authors' notebook step: cumulative ascent, one backward over retained graphs; see "
    "docs/reproduction-notes.md)",
    "trial.hp": "other hyperparameters of the method (`lam`, `rate`, `alpha`, ...)",
    "trial.train_size": "training examples used (a subset of the training split)",
    "trial.epochs": "training epochs",
    "trial.batch_size": "training batch size",
    "trial.lr": "Adam's learning rate",
    "trial.data_dir": "the data root the task's loader reads",
    "trial.bucket": "length-aware training batches (text tasks)",
    "trial.vectors": "the text embedding's start: `glove` (the data root's "
    "glove/glove.6B.300d.txt when present, else random), a GloVe-format file, or unset (random)",
    "trial.variant": "the paper table's row label; `{field}` placeholders are filled from the "
    'trial (`"{train_size}"`)',
    "search.algorithm": "`grid`: every cell once per seed; `tpe` (Optuna) or `random`: "
    "num_samples draws from space",
    "search.num_samples": "trials a TPE/random search draws (grids: 1 or unset)",
    "search.metric": "the validation metric configurations are ranked by",
    "search.mode": "whether higher or lower is better",
    "search.scheduler": "`asha`: Ray Tune's ASHA stops weak trials early",
    "search.grace_period": "ASHA: epochs before a trial may be stopped",
    "search.reduction_factor": "ASHA: the fraction kept at each rung is 1/reduction_factor",
    "search.seed": "the sampler's seed (TPE/random)",
    "search.storage": "an SQLAlchemy URL for the Optuna study (default: sqlite under runs/)",
    "search.study_name": "the Optuna study's name (default: the sweep's)",
    "resources.cpus": "CPUs (and torch threads) per trial; `auto`: the split of a node's CPUs "
    "into trials x threads with the most trials/hour, measured before the sweep",
    "resources.gpus": "GPUs per trial; a fraction lets trials share a GPU; `auto`: a GPU share "
    "sized by `dropattack plan`'s measurement where the Ray cluster has GPUs, the CPU where "
    "it has none",
    "resources.max_concurrent": "at most this many trials at once (default: as many as fit)",
    "resources.max_failures": "retries of a trial that failed for a reason a retry may cure",
    "resources.reuse_actors": "Ray Tune reuses a trial's worker process for the next trial",
    "range.low": "the lower bound",
    "range.high": "the upper bound",
    "range.log": "sample on a log scale (low > 0)",
    "range.step": "a step between values (not with log)",
}

#: Allowed values that validators (not the types) enforce, keyed like :data:`MEANING`.
_ALLOWED: dict[str, str] = {
    "spec.name": NAME_RULE,
    "spec.paper_table": ", ".join(f"`{t}`" if t else '`""`' for t in PAPER_TABLES),
    "spec.seeds": f"1 to {MAX_SEEDS} distinct integers, or the mapping below",
    "seeds.initial": "2 <= initial <= max",
    "seeds.max": f"initial <= max <= {MAX_SEEDS}",
    "spec.system_metrics": "true, false or seconds >= 1",
    "trial.eps": "a finite number >= 0",
    "trial.p": "0 <= p <= 1",
    "trial.k": ">= 1",
    "trial.train_size": ">= 1",
    "trial.epochs": ">= 1",
    "trial.batch_size": ">= 1",
    "trial.lr": "> 0",
    "resources.cpus": "> 0, or `auto`",
    "resources.gpus": "0, a fraction <= 1, a whole number, or `auto`",
    "range.low": "<= high",
}

_SECTIONS: list[tuple[str, str, type[BaseModel]]] = [
    ("spec", "Top level", Spec),
    ("trial", "Trial fields", TrialFields),
    ("search", "search", Search),
    ("resources", "resources", Resources),
    ("range", "A range in space", Range),
    ("seeds", "seeds until decided", SeedRounds),
]

_INTRO = """\
# Spec reference

A spec is a YAML file that names one experiment: the trials to train, how they are chosen,
what each gets. `dropattack sweep NAME` runs a shipped spec (`sweeps/specs/NAME.yaml`);
`dropattack sweep path/to/my.yaml` runs yours. Every field below is checked before anything
runs: an unknown field, a wrong type or a value outside the allowed ones stops the sweep with
one line naming the file, the field path and what was expected.

This page is generated from the spec model (`python -m sweeps.specs.reference`); a test keeps
the two equal.

```yaml
name: my-grid
paper_table: ""
defaults: {task: digits-lenet5, method: dropattack, attack: [Input], epochs: 2}
trials:
  - {method: standard}
  - {method: dropattack}
space: {eps: [1, 5], p: [0, 0.7]}
seeds: 3
search: {algorithm: grid, metric: val_acc, mode: max}
resources: {cpus: 1, gpus: auto}
```
"""

_PAPER_TABLE = """\
## paper_table

`paper_table` ties a sweep to a table of the paper (Ni, Li, Kao 2021). It changes the report
and `confirm`, never the training:

- **The layout.** The report lays the measured cells out as that table (Table 10's eps x p
  grid, Table 3's sizes, Table 2's methods x datasets, Tables 5-9's attacked layers) with the
  paper's number beside each measured one. `""`, `quickstart`, `search`, `extension` and
  `figure2` have no paper numbers: the report lists configurations.
- **The baseline rule.** Each configuration's effect is its difference to a baseline of the
  same task: Table 10's baseline is the p = 0 row (and `method: standard`), Table 3's the
  standard row of the same size, Table 4's K = 1, Tables 2 and 5-9 the unattacked row; without
  a table, `method: standard` or DropAttack that perturbs nothing (no target, or p = 0). `confirm`
  re-runs the selected configuration together with that baseline, so a task needs one.
- **The paper's numbers.** A cell gets the paper's number of the row and column it matches
  (by method, targets, eps, p, K, training size and dataset).
- **The verdicts.** A cell's number is *reproduced* when the paper's lies within two
  standard deviations of its mean over the seeds, or within its 95% t-interval (two seeds at
  least). An effect (cell minus baseline, with Welch's 95% interval, Holm-adjusted within a
  table) reads *not shown* when its interval covers 0, *opposite* when it excludes 0 on the
  other side than the paper's effect, *reproduced* when it excludes 0 on the paper's side and
  holds the paper's effect or lies beyond it, *smaller* when it lies between 0 and the
  paper's effect.
- **Another dataset.** The numbers of a table belong to its dataset (Tables 3 and 10: IMDB).
  A sweep of another dataset under that table is reported with a warning, without the paper's
  numbers, against the generic baseline rule above.
"""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in args]
        return " or ".join(dict.fromkeys(parts))
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}s" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, str(tp))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    if value is None:
        return "unset"
    if value == "" or value == {} or value == []:
        return '`""`' if value == "" else f"`{value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def _allowed(section: str, name: str, field: FieldInfo) -> str:
    found = _ALLOWED.get(f"{section}.{name}")
    bounds = [
        f"{op} {getattr(m, attr)}"
        for m in field.metadata
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if getattr(m, attr, None) is not None
    ]
    if section == "trial" and name == "task":
        return ", ".join(f"`{t}`" for t in _tasks())
    if section == "trial" and name == "method":
        return ", ".join(f"`{m}`" for m in _methods())
    return found or ", ".join(bounds)


def _tasks() -> list[str]:
    from models import tasks

    return tasks.names()


def _methods() -> list[str]:
    from dropattack import methods

    return methods.names()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The reference as Markdown."""
    lines = [_INTRO]
    for section, title, model in _SECTIONS:
        lines.append(f"## {title}\n")
        if section == "trial":
            lines.append(
                "`defaults` and each entry of `trials` hold these fields; a trial's value is "
                "its entry's, else its axis value, else `defaults`', else the task's or the "
                "method's own default (unset).\n"
            )
        elif section == "search":
            lines.append(
                f"Algorithms: {', '.join(ALGORITHMS)}; schedulers: {', '.join(SCHEDULERS)}; "
                f"metrics: {', '.join(METRICS)}.\n"
            )
        lines.append("| field | type | default | allowed | meaning |")
        lines.append("| --- | --- | --- | --- | --- |")
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            meaning = MEANING.get(f"{section}.{name}", field.description or "")
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        f"`{name}`",
                        _type_name(field.annotation),
                        _default(field),
                        _allowed(section, name, field),
                        meaning,
                    )
                )
                + " |"
            )
        lines.append("")
    lines.append(_PAPER_TABLE)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write ``docs/spec.md``, or with ``--check`` exit 1 when it differs from the model."""
    parser = argparse.ArgumentParser(prog="python -m sweeps.specs.reference")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is stale: run python -m sweeps.specs.reference", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
