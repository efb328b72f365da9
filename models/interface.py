"""The task interface: what the sweep service needs from a task, the paper's and the user's.

A task is an object of a :class:`TaskInterface` subclass. It says

- how to load its data: :meth:`~TaskInterface.load` returns a :class:`~models.data.TaskData`
  (train/validation/test splits in memory) and honours the :class:`~models.data.DataOptions`
  fields it lists in ``data_options`` (``train_size`` and ``split_seed`` at least; the
  paper's text tasks also ``data_dir``, ``max_vocab``, ``vectors``);
- how to build its model from that data: :meth:`~TaskInterface.build_model` (any
  ``torch.nn.Module`` that maps a batch's ``x`` to logits); with ``data=None`` it builds the
  same architecture without data where it can (the spec checks list its parameter names);
- its metrics (``acc``, ``f1``: what it produces and may be selected on as ``val_acc``,
  ``val_f1``) and training defaults (``epochs``, ``batch_size``, ``lr``);
- the names its attack targets may use: parameter names (``fc.weight``), globs over
  ``model.named_parameters()`` (``encoder.*.weight``), optional ``aliases`` (the paper's
  ``Embedding``, ``Lstm.ih.w``), and which input is perturbed: ``perturbs = "input"`` (the
  model's float input ``x``, target ``"input"``) or ``"embedding"`` (the weight of an
  ``nn.Embedding``, the input attack of a text model).

The paper's tasks (:mod:`models.tasks`) are :class:`TaskInterface` objects too. A user's task
is usually a :class:`SimpleTask` built by a factory function that a spec names as
``task: "package.module:factory"`` (see :mod:`models.external`)::

    def make(hidden: int = 32) -> SimpleTask:
        return SimpleTask(name="wine-mlp", load_data=load_wine_data,
                          model_builder=lambda data: Mlp(13, hidden, 3), epochs=20)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from models.aliases import INPUT, split_list
from models.data import DataOptions, Split, TaskData

__all__ = [
    "METRICS",
    "PERTURBS",
    "SimpleTask",
    "TaskInterface",
    "resolve_targets",
    "tensor_data",
]

#: Metrics a trial computes on the validation and test splits (``val_acc``, ``test_f1``, ...).
METRICS = ("acc", "f1")
#: What a task's input attack perturbs.
PERTURBS = ("input", "embedding")


class TaskInterface:
    """A task: its data, its model, its metrics and defaults, and its attack targets.

    Subclasses set the attributes (class attributes or dataclass fields) and implement
    :meth:`load` and :meth:`build_model`.

    Attributes:
        name: the task's name, as records and reports show it.
        metrics: the metrics it produces, among :data:`METRICS` (a spec may select on
            ``val_<metric>``).
        epochs, batch_size, lr, optimizer: training defaults a spec may override.
        perturbs: ``"input"`` (the float input ``x``) or ``"embedding"`` (an embedding weight).
        data_options: the :class:`DataOptions` fields :meth:`load` honours.
    """

    name: str
    metrics: tuple[str, ...] = ("acc", "f1")
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    perturbs: Literal["input", "embedding"] = "input"
    data_options: tuple[str, ...] = ("train_size", "split_seed")

    def load(self, options: DataOptions | None = None) -> TaskData:
        """Train/validation/test splits in memory."""
        raise NotImplementedError

    def build_model(self, data: TaskData | None = None, **overrides: Any) -> nn.Module:
        """The task's model for ``data``; ``overrides`` are model keyword arguments."""
        raise NotImplementedError

    @property
    def is_text(self) -> bool:
        """Whether batches carry token lengths (length-aware batches need it)."""
        return self.perturbs == "embedding"

    @property
    def produces(self) -> tuple[str, ...]:
        """The metrics a selection may use (``acc`` -> ``val_acc``)."""
        return tuple(self.metrics)

    def aliases(self, model: nn.Module) -> dict[str, list[str]]:
        """Alias -> parameter names on ``model`` (``"input"`` for the input); default: the
        model's own ``aliases`` (a :class:`~models.aliases.PaperModel`'s) or none."""
        return dict(getattr(model, "aliases", None) or {})

    @property
    def input_alias(self) -> str:
        """The default attack target: ``"input"``, or the embedding weight's glob."""
        return INPUT if self.perturbs == "input" else "*embedding*.weight"

    def resolve(self, model: nn.Module, items: str | Sequence[str]) -> list[str]:
        """Aliases, parameter names or globs -> parameter names on ``model``."""
        return resolve_targets(
            model, items, self.aliases(model), allow_input=self.perturbs == "input"
        )

    def model_for_names(self) -> nn.Module:
        """A model whose parameter names the spec checks use: ``build_model()`` without
        data, on the meta device (no memory); a task whose model needs its data loads it."""
        with torch.device("meta"):
            try:
                return self.build_model(None)
            except (TypeError, AttributeError, ValueError):
                pass
        return self.build_model(self.load(DataOptions(train_size=None)))

    def describe(self) -> dict[str, Any]:
        """The task's settings, aliases and parameter names (no data loaded where avoidable)."""
        model = self.model_for_names()
        return {
            "task": self.name,
            "metrics": list(self.metrics),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "perturbs": self.perturbs,
            "input_alias": self.input_alias,
            "data_options": list(self.data_options),
            "aliases": self.aliases(model),
            "parameters": [n for n, _ in model.named_parameters()],
        }


@dataclass(frozen=True, eq=False, kw_only=True)
class SimpleTask(TaskInterface):
    """A task from two functions: what a user's factory usually returns.

    Args:
        name: the task's name.
        load_data: ``DataOptions -> TaskData`` (see :func:`tensor_data`): :meth:`load`.
        model_builder: ``(TaskData | None, **overrides) -> nn.Module``: :meth:`build_model`;
            the overrides are ``dropattack train --model``'s.
        metrics, epochs, batch_size, lr, perturbs, data_options: see :class:`TaskInterface`.
        target_aliases: optional names for sets of parameters (``{"Hidden": ["fc1.weight"]}``).
    """

    name: str
    load_data: Callable[[DataOptions], TaskData] = field(repr=False)
    model_builder: Callable[..., nn.Module] = field(repr=False)
    metrics: tuple[str, ...] = ("acc", "f1")
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    perturbs: Literal["input", "embedding"] = "input"
    data_options: tuple[str, ...] = ("train_size", "split_seed")
    target_aliases: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [m for m in self.metrics if m not in METRICS]
        if not self.metrics or bad:
            raise ValueError(f"metrics: expected some of {', '.join(METRICS)}, got {self.metrics}")
        if self.perturbs not in PERTURBS:
            raise ValueError(f"perturbs: expected 'input' or 'embedding', got {self.perturbs!r}")

    def load(self, options: DataOptions | None = None) -> TaskData:
        return self.load_data(options or DataOptions())

    def build_model(self, data: TaskData | None = None, **overrides: Any) -> nn.Module:
        return self.model_builder(data, **overrides)

    def aliases(self, model: nn.Module) -> dict[str, list[str]]:
        own = super().aliases(model)
        own.update({k: list(v) for k, v in self.target_aliases.items()})
        return own


def resolve_targets(
    model: nn.Module,
    items: str | Sequence[str],
    aliases: Mapping[str, Sequence[str]] | None = None,
    *,
    allow_input: bool = True,
) -> list[str]:
    """Aliases, ``"input"``, parameter names and globs -> names, each once, in order.

    Raises:
        ValueError: an item matches nothing; the message lists what would.
    """
    wanted = split_list(items)
    if not wanted:
        raise ValueError("attack: expected at least one target")
    aliases = dict(aliases or {})
    params = [n for n, _ in model.named_parameters()]
    out: list[str] = []
    for item in wanted:
        if item in aliases:
            names = list(aliases[item])
        elif item == INPUT and allow_input:
            names = [INPUT]
        elif item in params:
            names = [item]
        else:
            names = [p for p in params if fnmatch.fnmatchcase(p, item)]
        if not names:
            valid = ", ".join([*aliases, *([INPUT] if allow_input else []), *params])
            raise ValueError(
                f"attack: {item!r} matches no parameter of {type(model).__name__}; "
                f"expected an alias, a parameter name or a glob among: {valid}"
            )
        out.extend(n for n in names if n not in out)
    return out


def tensor_data(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    options: DataOptions | None = None,
    *,
    val: float = 0.15,
    test: float = 0.15,
    source: str = "",
) -> TaskData:
    """Arrays of features and integer labels -> a seeded train/validation/test split.

    Honours ``options.split_seed`` (the split) and ``options.train_size`` (a seeded subset of
    the training split), as the paper's loaders do.
    """
    options = options or DataOptions()
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    n = len(yt)
    order = np.random.default_rng(options.split_seed).permutation(n)
    n_val, n_test = int(round(n * val)), int(round(n * test))
    parts = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    if options.train_size is not None:
        parts["train"] = parts["train"][: options.train_size]
    whole = Split(xt, yt)
    return TaskData(
        train=whole.subset(parts["train"]),
        val=whole.subset(parts["val"]),
        test=whole.subset(parts["test"]),
        num_classes=int(yt.max().item()) + 1,
        split=f"seeded {1 - val - test:.0%}/{val:.0%}/{test:.0%} (split_seed {options.split_seed})",
        source=source,
    )
