"""``dropattack train``'s run: the trial in the foreground with its epoch lines and bar.

Imported only when a trial runs (it needs torch), not for ``dropattack train --help``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch

from dropattack.train import Callback, EpochMetrics
from sweeps.commands.argtypes import resolve_tracking_uri
from sweeps.specs.names import config_name, trial_name
from sweeps.trial import (
    TIME_METRICS,
    TrialConfig,
    TrialResult,
    effective,
    ran_params,
    run_trial,
)

__all__ = ["EpochBar", "ProgressLine", "epoch_bar", "run_console", "run_logged", "summary"]


class ProgressLine(Callback):
    """One line per epoch on stdout."""

    def __init__(self, epochs: int | None) -> None:
        self.epochs = epochs

    def on_epoch_end(self, metrics: EpochMetrics, model, state) -> None:
        total = f"/{self.epochs}" if self.epochs else ""
        print(
            f"epoch {metrics.epoch}{total}  train_loss {metrics.train_loss:.4f}  "
            f"train_acc {metrics.train_acc:.4f}  val_acc {metrics.val_acc:.4f}  "
            f"val_f1 {metrics.val_f1:.4f}  {metrics.seconds:.1f}s",
            flush=True,
        )


class EpochBar(Callback):
    """A progress bar within each epoch (batches, examples/s, ETA), gone before its epoch line.

    ``progress`` is a ``rich.progress.Progress`` (see :func:`epoch_bar`).
    """

    def __init__(self, progress: Any, epochs: int | None) -> None:
        self.progress = progress
        self.epochs = epochs
        self.task: Any = None
        self.examples = 0
        self.t0 = 0.0

    def on_epoch_start(self, epoch: int, batches: int | None) -> None:
        total = f"/{self.epochs}" if self.epochs else ""
        self.examples, self.t0 = 0, time.perf_counter()
        self.progress.start()
        self.task = self.progress.add_task(f"epoch {epoch}{total}", total=batches, rate="")

    def on_batch_end(self, epoch: int, step: int, examples: int) -> None:
        self.examples += examples
        seconds = time.perf_counter() - self.t0
        rate = f"{self.examples / seconds:,.0f} ex/s" if seconds > 0 else ""
        self.progress.update(self.task, completed=step, rate=rate)

    def on_epoch_end(self, metrics: EpochMetrics, model, state) -> None:
        self.close()

    def close(self) -> None:
        """Take the bar off the screen (after an epoch, or when training raised)."""
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        self.progress.stop()


def epoch_bar(epochs: int | None, show: bool) -> EpochBar | None:
    """The epoch bar when ``show`` (stdout is a terminal, no ``--json``) and rich is there."""
    if not show:
        return None
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
    except ImportError:  # the GPU image has no rich: epoch lines only
        return None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("batches  {task.fields[rate]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=sys.stdout),
        transient=True,
    )
    return EpochBar(progress, epochs)


def run_console(args: argparse.Namespace, cfg: TrialConfig) -> int:
    """Train ``cfg`` as the ``train`` flags ``args`` ask; the exit status."""
    threads = args.threads or _default_threads()
    torch.set_num_threads(threads)
    if cfg.epochs is None:
        from models import tasks

        epochs = tasks.get(cfg.task, cfg.task_args or None).epochs
    else:
        epochs = cfg.epochs
    bar = epoch_bar(epochs, show=not args.json and sys.stdout.isatty())
    callbacks: list[Callback] = [*([bar] if bar else []), ProgressLine(epochs)]
    try:
        if args.mlflow_uri:
            uri = resolve_tracking_uri(args.mlflow_uri)
            result = run_logged(uri, args.experiment, cfg, epochs, callbacks)
        else:
            result = run_trial(cfg, callbacks)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps({**result.as_json(), "threads": threads}), flush=True)
    else:
        print(f"{summary(result)}  threads {threads}", flush=True)
    return 0


def _default_threads() -> int:
    """Without --threads or $DROPATTACK_THREADS: the CPUs other processes leave idle."""
    from sweeps.execution.threads import default_threads

    return default_threads()


def summary(result: TrialResult) -> str:
    """Two lines: what ran (method, its values, targets, data) and what it measured."""
    m, ran = result.metrics, result.ran
    values = " ".join(f"{k}={ran[k]:g}" for k in ("eps", "p", "k") if ran.get(k) is not None)
    groups = f" groups={ran['groups']}" if ran.get("groups") else ""
    groups += f" step={ran['step']}" if ran.get("step") not in (None, "paper") else ""
    targets = ", ".join(
        f"{alias} ({name})" for alias, name in zip(result.aliases, result.attacked, strict=False)
    )
    if len(result.attacked) != len(result.aliases):  # a glob or alias naming several tensors
        targets = f"{'+'.join(result.aliases)} ({','.join(result.attacked)})"
    sizes = result.sizes
    ran_line = (
        f"ran {ran.get('task', '')} {ran.get('method', '')} {values}{groups}"
        + (f"  attacked {targets}" if targets else "")
        + f"  seed {ran.get('seed', 0)}  epochs {ran.get('epochs')}  batch {ran.get('batch_size')}"
        + f"  lr {ran.get('lr')}"
        + f"\ndata {ran.get('data_source', '')} ({ran.get('data_split', '')} split): "
        + f"train {sizes['train']} / val {sizes['val']} / test {sizes['test']}"
        + (
            f"  root {ran['data_root']}"
            if ran.get("data_root") and ran.get("data_root") != ran.get("data_source")
            else ""
        )
        + (
            f"  embedding {ran['embedding_init']} (paper: GloVe)"
            if ran.get("embedding_init")
            else ""
        )
    )
    return (
        f"{ran_line}\n"
        f"test_acc {m['test_acc']:.4f}  test_f1 {m['test_f1']:.4f}  val_acc {m['val_acc']:.4f}  "
        f"best epoch {int(m['best_epoch'])}/{int(m['epochs'])}  "
        f"train {m['train_seconds']:.1f}s, setup {m['setup_seconds']:.1f}s"
    )


class _EpochLogger(Callback):
    """Per-epoch MLflow metrics, named as the MLflow contract's child runs."""

    def __init__(self, mlflow) -> None:
        self.mlflow = mlflow

    def on_epoch_end(self, metrics: EpochMetrics, model, state) -> None:
        self.mlflow.log_metrics(
            {
                "epoch_train_loss": metrics.train_loss,
                "epoch_train_acc": metrics.train_acc,
                "epoch_val_acc": metrics.val_acc,
                "epoch_val_f1": metrics.val_f1,
            },
            step=metrics.epoch,
        )


def _default_attack(cfg: TrialConfig) -> list[str]:
    """The task's input target for a method that attacks and was given no targets."""
    from models import tasks
    from sweeps.trial import method_args

    task = tasks.get(cfg.task, cfg.task_args or None)
    return [task.input_alias] if "attack" in method_args(cfg.method) else []


def run_logged(
    uri: str, experiment: str, cfg: TrialConfig, epochs: int, callbacks: list[Callback]
) -> TrialResult:
    """Run the trial inside one flat MLflow run (params, per-epoch and final metrics, history).

    A failing trial leaves the run FAILED with its message in the tag ``dropattack.error``.
    """
    import mlflow

    started = time.perf_counter()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    attack = ";".join(cfg.attack or _default_attack(cfg))
    hp = effective(cfg)
    cell = ";".join(
        [f"task={cfg.task}", f"method={cfg.method}", f"attack={attack.replace(';', '+')}"]
        + [f"{name}={hp[name]}" for name in ("eps", "p", "k")]
    )
    trial = {"task": cfg.task, "method": cfg.method, "attack": attack.split(";"), **hp,
             "train_size": cfg.train_size, "hp": cfg.hp, "seed": cfg.seed}  # fmt: skip
    with mlflow.start_run(run_name=trial_name(trial)):
        mlflow.set_tags(
            {
                "dropattack.role": "trial",
                "dropattack.cell": cell,
                "dropattack.name": config_name(trial),
                "dropattack.command": "train",
            }
        )
        mlflow.log_params(
            {
                "task": cfg.task,
                "method": cfg.method,
                "attack": attack,
                **{name: value for name, value in hp.items() if value is not None},
                "seed": cfg.seed,
                "epochs": epochs,
                **cfg.hp,
                **(
                    {"task_args": json.dumps(cfg.task_args, sort_keys=True)}
                    if cfg.task_args
                    else {}
                ),
            }
        )
        try:
            result = run_trial(cfg, [*callbacks, _EpochLogger(mlflow)], started=started)
        except Exception as e:
            mlflow.set_tag("dropattack.error", f"{type(e).__name__}: {e}"[:5000])
            raise
        mlflow.log_params({**ran_params(result), "train_size": result.train_size})
        mlflow.log_metrics(
            {k: result.metrics[k] for k in ("val_acc", "val_f1", "test_acc", "test_f1")}
            | {k: result.metrics[k] for k in ("best_epoch", *TIME_METRICS)}
        )
        mlflow.log_dict({"history": [h.as_dict() for h in result.history]}, "history.json")
    return result
