"""One trial: a task's data and model, a training method, :func:`dropattack.fit`. No Ray, no MLflow.

``dropattack train`` runs one trial in the foreground; the sweep service runs many, in Ray
workers, and attaches MLflow logging and checkpoints through ``callbacks``.

>>> from sweeps.trial import TrialConfig, run_trial
>>> result = run_trial(TrialConfig("digits-lenet5", attack=("Input", "Conv.1.w"), epochs=2))
>>> result.metrics["test_acc"] > 0.9, result.attacked  # doctest: +SKIP
(True, ['input', 'conv1.weight'])
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from dropattack import methods
from dropattack.train import Callback, EpochMetrics, fit
from models import tasks
from models.aliases import split_list
from models.data import DataOptions
from models.interface import TaskInterface

__all__ = [
    "COMMON_ARGS",
    "TIME_METRICS",
    "PreparedTrial",
    "TrialConfig",
    "TrialResult",
    "prepare_trial",
    "ran_params",
    "ran_record",
    "run_trial",
]

COMMON_ARGS = ("attack", "eps", "p", "k", "seed", "groups", "step", "optimizer")
#: The common arguments a trial records with the values its method used.
_COMMON_VALUES = ("eps", "p", "k", "groups", "step")
EVAL_BATCH = 256  # evaluation batch size floor; metrics do not depend on it
#: A trial's time, in seconds, as its metrics name it (see :class:`TrialResult`).
TIME_METRICS = ("seconds", "setup_seconds", "train_seconds")


@dataclass
class TrialConfig:
    """Everything one trial depends on.

    Attributes:
        task: a name of :mod:`models.tasks`, an installed task (entry-point group
            ``dropattack.tasks``) or ``"package.module:factory"`` (see :mod:`models.external`).
        task_args: keyword arguments of the task's factory.
        method: a name of :mod:`dropattack.methods`.
        attack: paper aliases ("Embedding", "Lstm.ih.w", "Input", ...) or parameter names or
            globs; ``()`` attacks the task's input target (Embedding or Input). Only for
            methods that take ``attack``.
        eps, p, k, groups, step: passed to any method that takes them; ``None`` keeps the
            method's own default (DropAttack: eps 5, p 0.7, k 1, groups "paper", step "paper";
            FGM: eps 1; ...), so
            one method's radius never leaks into another's.
        hp: other method hyperparameters (``lam``, ``rate``, ``alpha``, ...); they win over the
            common arguments.
        seed: model initialisation, batch order, attack masks. The data split is fixed.
        epochs, train_size, batch_size, lr: ``None`` takes the task's paper default (all of
            the training set for ``train_size``).
        bucket: length-aware training batches (text tasks; see ``models.data.Batches``).
        data_dir: the data root (see :mod:`models.data.paths`).
        device: ``cpu`` or ``cuda``.
        vectors: a GloVe-format file for text tasks' embeddings, or ``glove``: the data
            root's ``glove/glove.6B.300d.txt`` when present (see :mod:`models.data.vectors`).
        download: let torchvision download MNIST/CIFAR-10 into ``data_dir``.
        model: model keyword overrides (``embed_dim``, ``hidden``, ``dropout``, ...).
    """

    task: str
    method: str = "dropattack"
    attack: tuple[str, ...] = ()
    eps: float | None = None
    p: float | None = None
    k: int | None = None
    groups: str | None = None
    step: str | None = None
    hp: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    epochs: int | None = None
    train_size: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    bucket: bool = False
    data_dir: str | None = None
    device: str = "cpu"
    vectors: str | None = None
    download: bool = False
    model: dict[str, Any] = field(default_factory=dict)
    task_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.attack = tuple(split_list(self.attack))


@dataclass
class TrialResult:
    """What a trial measured.

    Attributes:
        metrics: ``val_acc``, ``val_f1``, ``test_acc``, ``test_f1``, ``epochs``, ``best_epoch``;
            accuracies and F1 are fractions in [0, 1]. Time, in seconds: ``setup_seconds``
            (from the trial's start to its first training step: data, vocabulary, model,
            method; in a sweep also opening its MLflow run), ``train_seconds`` (the epochs'
            training and validation passes: the cost the report compares) and ``seconds``
            (all of :func:`dropattack.fit`: the epochs with the callbacks' checkpoints and
            logging, and the test evaluation).
        attacked: the resolved parameter names (``"input"`` for the input tensor).
        aliases: the attack targets as given (or the task's input alias by default).
        train_size: training examples used.
        sizes: examples per split.
        history: per-epoch metrics.
        best_state: the best-on-validation weights (CPU tensors).
        config: the configuration as given (``None`` fields take defaults).
        data: how the data was loaded (split rule, source, batch size, learning rate, ...).
        ran: what ran, every default resolved (:func:`ran_record`).
    """

    metrics: dict[str, float]
    attacked: list[str]
    aliases: list[str]
    train_size: int
    sizes: dict[str, int]
    history: list[EpochMetrics]
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    config: TrialConfig | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ran: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The ``dropattack train --json`` object (JSON-serialisable)."""
        cfg = self.config
        out: dict[str, Any] = {}
        if cfg is not None:
            out.update(task=cfg.task, method=cfg.method, seed=cfg.seed)
        out.update(self.metrics)
        out.update(
            attacked=self.attacked,
            aliases=self.aliases,
            train_size=self.train_size,
            sizes=self.sizes,
            data=self.data,
            history=[h.as_dict() for h in self.history],
        )
        if cfg is not None:
            out["config"] = self.ran or asdict(cfg)
        return out


@dataclass
class PreparedTrial:
    """A trial ready to train: what :func:`run_trial` builds before :func:`dropattack.fit`.

    :mod:`sweeps.cost.calibrate` times a few steps of exactly this, so a plan measures what a
    trial runs.
    """

    config: TrialConfig
    task: TaskInterface
    data: Any  # models.data.TaskData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    method: methods.Method
    attacked: list[str]
    aliases: list[str]
    device: torch.device
    train: Any  # models.data.Batches (training order)
    eval_batch_size: int
    batch_size: int
    epochs: int
    lr: float
    setup_seconds: float
    start_epoch: int = 0
    history: list[EpochMetrics] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None

    def eval_batches(self, split: str) -> Any:
        """The ``val`` or ``test`` split in evaluation batches."""
        return self.data.batches(split, self.eval_batch_size)


def prepare_trial(
    cfg: TrialConfig, resume: dict[str, Any] | None = None, started: float | None = None
) -> PreparedTrial:
    """Load the task's data, build its model (seeded), the method and Adam: a trial's set-up.

    ``resume`` is the ``state`` a callback received in ``on_epoch_end`` (see :func:`run_trial`);
    ``setup_seconds`` counts from ``started`` (``time.perf_counter``; default: now).

    Raises:
        ValueError: unknown task, method, alias or hyperparameter; unavailable device.
        models.data.DataError: missing or malformed data.
    """
    t0 = time.perf_counter() if started is None else started
    task = tasks.get(cfg.task, cfg.task_args or None)
    device = _device(cfg.device)
    data = task.load(
        DataOptions(
            data_dir=cfg.data_dir,
            train_size=cfg.train_size,
            vectors=cfg.vectors,
            download=cfg.download,
        )
    )
    torch.manual_seed(cfg.seed)
    model = task.build_model(data, **cfg.model).to(device)
    lr = cfg.lr if cfg.lr is not None else task.lr
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    method, attacked, aliases = _build_method(cfg, task, model, optimizer)
    batch_size = cfg.batch_size if cfg.batch_size is not None else task.batch_size
    epochs = cfg.epochs if cfg.epochs is not None else task.epochs
    if cfg.bucket and not task.is_text:
        raise ValueError(f"bucket: length-aware batches need a text task, got {cfg.task!r}")
    train = data.batches("train", batch_size, seed=cfg.seed, bucket=cfg.bucket)
    start_epoch, history, best_state = 0, [], None
    if resume is not None:
        start_epoch, history, best_state = _restore(resume, model, optimizer, method)
        train.set_epoch(start_epoch)
    return PreparedTrial(
        config=cfg,
        task=task,
        data=data,
        model=model,
        optimizer=optimizer,
        method=method,
        attacked=attacked,
        aliases=aliases,
        device=device,
        train=train,
        eval_batch_size=max(batch_size, EVAL_BATCH),
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        setup_seconds=time.perf_counter() - t0,
        start_epoch=start_epoch,
        history=history,
        best_state=best_state,
    )


def run_trial(
    cfg: TrialConfig,
    callbacks: Sequence[Callback] = (),
    resume: dict[str, Any] | None = None,
    started: float | None = None,
) -> TrialResult:
    """Build the task's data and model (seeded), the method and Adam, and train.

    ``resume`` is the ``state`` a callback received in ``on_epoch_end``: the run continues
    after that epoch with the same batch order an uninterrupted run would have had.
    ``started`` is the trial's start on the ``time.perf_counter`` clock (default: now), from
    which ``setup_seconds`` is counted.

    Raises:
        ValueError: unknown task, method, alias or hyperparameter; unavailable device.
        models.data.DataError: missing or malformed data.
    """
    t = prepare_trial(cfg, resume, started)
    result = fit(
        t.model,
        t.method,
        t.optimizer,
        t.train,
        t.eval_batches("val"),
        t.eval_batches("test"),
        epochs=t.epochs,
        device=t.device,
        callbacks=callbacks,
        start_epoch=t.start_epoch,
        history=t.history,
        best_state=t.best_state,
    )
    ran = ran_record(cfg, t.data, method_args(cfg.method), t.aliases, t.attacked)
    ran.update(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, **task_origin(cfg.task))
    return TrialResult(
        ran=ran,
        metrics={**result.metrics(), "setup_seconds": t.setup_seconds},
        attacked=t.attacked,
        aliases=t.aliases,
        train_size=len(t.data.train),
        sizes=t.data.sizes,
        history=result.history,
        best_state=result.best_state,
        config=cfg,
        data={
            "split": t.data.split,
            "source": t.data.source,
            "batch_size": t.batch_size,
            "lr": t.lr,
            **t.data.info,
        },
    )


def ran_record(
    cfg: TrialConfig, data: Any, accepted: set[str], aliases: list[str], attacked: list[str]
) -> dict[str, Any]:
    """What a trial ran, every default resolved: the fields of :class:`TrialConfig` with
    the attack set as paper aliases (the task's input target when none was given) and its
    parameter names (``attacked``), the eps, p, k and groups the method used (its own
    defaults filled in; absent for a method that does not take them), and the data: its
    root, source, split rule and split sizes (``train_size`` is the examples trained on).
    """
    out = asdict(cfg)
    out.update(attack=list(aliases), attacked=list(attacked))
    used = effective(cfg)
    for name in _COMMON_VALUES:
        if name in accepted:
            out[name] = used[name]
        else:
            out.pop(name)
    sizes = data.sizes
    out.update(
        train_size=sizes["train"],
        data_root=data.info.get("data_root") or cfg.data_dir or data.source,
        data_source=data.source,
        data_split=data.split,
        sizes=dict(sizes),
    )
    if data.info.get("embedding_init"):
        out["embedding_init"] = data.info["embedding_init"]
    return out


def ran_params(result: TrialResult) -> dict[str, Any]:
    """MLflow params of what ran that a trial's configuration leaves to defaults: the
    attacked parameter names, the batch size and learning rate, and the data (root,
    source, split rule, validation and test sizes; ``train_size`` is logged with the
    configuration)."""
    ran = result.ran
    out = {
        "attacked": ",".join(result.attacked),
        "batch_size": ran.get("batch_size"),
        "lr": ran.get("lr"),
        "data_root": ran.get("data_root"),
        "data_source": ran.get("data_source"),
        "data_split": ran.get("data_split"),
        "embedding_init": ran.get("embedding_init"),
        "val_size": result.sizes.get("val"),
        "test_size": result.sizes.get("test"),
        "task_factory": ran.get("task_factory"),
        "task_version": ran.get("task_version"),
    }
    return {k: v for k, v in out.items() if v is not None}


def task_origin(task: str) -> dict[str, str]:
    """``task_factory`` and ``task_version`` of a task from the user's code (the reference
    and the package version or module hash); empty for a built-in task."""
    from models import external

    return external.origin(task) if task not in tasks.names() else {}


def method_defaults(name: str) -> dict[str, Any]:
    """Method ``name``'s own defaults for the common arguments eps, p, k and groups it takes."""
    params = inspect.signature(methods.get_class(name)).parameters
    return {
        n: p.default
        for n, p in params.items()
        if n in _COMMON_VALUES and p.default is not inspect.Parameter.empty
    }


def effective(cfg: TrialConfig) -> dict[str, Any]:
    """eps, p, k and groups as the trial's method will use them (``None`` where not taken)."""
    values = {**method_defaults(cfg.method)}
    values.update({n: getattr(cfg, n) for n in _COMMON_VALUES if getattr(cfg, n) is not None})
    return {n: values.get(n) for n in _COMMON_VALUES}


def method_args(name: str) -> set[str]:
    """Keyword arguments method ``name`` accepts (besides the model)."""
    cls = methods.get_class(name)
    params = inspect.signature(cls).parameters
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {n for n, p in params.items() if p.kind in kinds and n != "model"}


def _build_method(
    cfg: TrialConfig,
    task: TaskInterface,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[methods.Method, list[str], list[str]]:
    accepted = method_args(cfg.method)
    common: dict[str, Any] = {
        "eps": cfg.eps,
        "p": cfg.p,
        "k": cfg.k,
        "seed": cfg.seed,
        "groups": cfg.groups,
        "step": cfg.step,
        "optimizer": optimizer,
    }
    attacked: list[str] = []
    aliases: list[str] = []
    if "attack" in accepted:
        aliases = list(cfg.attack) or [task.input_alias]
        attacked = task.resolve(model, aliases)
        common["attack"] = attacked
    elif cfg.attack:
        raise ValueError(
            f"attack: method {cfg.method!r} takes no attack targets, got {list(cfg.attack)}"
        )
    kwargs = {k: v for k, v in common.items() if k in accepted and v is not None}
    kwargs.update(cfg.hp)
    return methods.get(cfg.method, model, **kwargs), attacked, aliases


def _restore(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    method: methods.Method,
) -> tuple[int, list[EpochMetrics], dict[str, torch.Tensor] | None]:
    missing = [k for k in ("epoch", "model", "optimizer", "method", "history") if k not in state]
    if missing:
        raise ValueError(f"resume: checkpoint state lacks {missing}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    method.load_state_dict(state["method"])
    history = [EpochMetrics(**h) for h in state["history"]]
    return int(state["epoch"]), history, state.get("best_state")


def _device(name: str) -> torch.device:
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} requested but torch sees no CUDA device")
    return torch.device(name)
