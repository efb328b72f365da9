"""``dropattack train TASK``: one trial in the foreground, no Ray (MLflow only with --mlflow-uri).

Prints one progress line per epoch; on a terminal a progress bar within each epoch comes
before it (batches, examples/s, ETA; ``rich``, imported only then and skipped where it is not
installed). With ``--json`` the last line of stdout is the result as one JSON object
(:meth:`sweeps.trial.TrialResult.as_json`) and no bar is drawn. Runs on torch and
tokenizers alone: no Ray, MLflow, Optuna or pydantic unless ``--mlflow-uri`` asks for MLflow.
This module parses (``--help`` imports no torch); :mod:`sweeps.commands.train_console` runs.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from sweeps.commands.argtypes import (
    data_root,
    existing_file,
    experiment_name,
    positive_float,
    positive_int,
    tracking_uri,
)

if TYPE_CHECKING:
    from sweeps.trial import TrialConfig

NAME = "train"
HELP = "Train one task with one method (a single trial, no Ray)."


def _vectors(text: str) -> str:
    """``glove`` or an existing GloVe-format file."""
    return text if text == "glove" else existing_file(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="task name (see `dropattack tasks`) or package.module:factory")
    parser.add_argument(
        "--task-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument of the task's factory (package.module:factory tasks)",
    )
    parser.add_argument(
        "--data-dir",
        type=data_root,
        metavar="DIR",
        help="data root (the layout `dropattack data fetch` writes; 'hf' for Hugging Face "
        "datasets; default: $DROPATTACK_DATA)",
    )
    parser.add_argument(
        "--method", default="dropattack", help="training method (default: %(default)s)"
    )
    parser.add_argument(
        "--attack",
        default="",
        help="targets: paper aliases or parameter names, comma-separated "
        "(default: the task's input target, Embedding or Input)",
    )
    own = "(default: the method's own; DropAttack: {})"
    parser.add_argument("--eps", type=float, help="perturbation radius " + own.format(5))
    parser.add_argument("--p", type=float, help="attack probability " + own.format(0.7))
    parser.add_argument("--k", type=int, help="ascent steps K " + own.format(1))
    parser.add_argument("--groups", help="DropAttack grouping " + own.format("paper"))
    parser.add_argument(
        "--step",
        choices=("paper", "notebook"),
        help="DropAttack step: Algorithms 1-2 as printed, or the authors' notebooks' "
        + own.format("paper"),
    )
    parser.add_argument("--epochs", type=positive_int, help="epochs (default: the task's)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument(
        "--train-size", type=positive_int, help="training examples (nested seeded subset)"
    )
    parser.add_argument("--batch-size", type=positive_int, help="batch size (default: the task's)")
    parser.add_argument(
        "--lr", type=positive_float, help="Adam learning rate (default: the task's)"
    )
    parser.add_argument(
        "--bucket", action="store_true", help="length-aware training batches (text tasks)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=os.environ.get("DROPATTACK_THREADS") or None,
        help="CPU threads for torch (default: $DROPATTACK_THREADS, else the CPUs other "
        "processes leave idle, at least 1; see the README)",
    )
    parser.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="method hyperparameter"
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model argument override (embed_dim, hidden, dropout, ...)",
    )
    parser.add_argument(
        "--vectors",
        type=_vectors,
        default=os.environ.get("DROPATTACK_VECTORS"),
        help="GloVe text-format vectors for text tasks, or 'glove': the data root's "
        "glove/glove.6B.300d.txt when present (default: $DROPATTACK_VECTORS; else random)",
    )
    parser.add_argument(
        "--download", action="store_true", help="let torchvision download MNIST/CIFAR-10"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON (last line)")
    parser.add_argument(
        "--mlflow-uri",
        type=tracking_uri,
        help="also log the run to this MLflow tracking URI",
    )
    parser.add_argument(
        "--experiment",
        type=experiment_name,
        default="dropattack-train",
        help="MLflow experiment (default: %(default)s)",
    )


def parse_pairs(items: list[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b=[1, 2]"]`` -> ``{"a": 1, "b": [1, 2]}`` (values read as YAML scalars).

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    if not items:
        return out
    import yaml  # only when pairs are given: the train path needs no more than torch

    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag}: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"{flag}: cannot read the value of {item!r}") from None
    return out


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    """The trial the flags describe."""
    from models.aliases import split_list
    from sweeps.trial import TrialConfig

    return TrialConfig(
        task=args.task,
        method=args.method,
        attack=tuple(split_list(args.attack)),
        eps=args.eps,
        p=args.p,
        k=args.k,
        groups=args.groups,
        step=args.step,
        hp=parse_pairs(args.hp, "--hp"),
        seed=args.seed,
        epochs=args.epochs,
        train_size=args.train_size,
        batch_size=args.batch_size,
        lr=args.lr,
        bucket=args.bucket,
        data_dir=args.data_dir,
        device=args.device,
        vectors=args.vectors,
        download=args.download,
        model=parse_pairs(args.model_arg, "--model-arg"),
        task_args=parse_pairs(args.task_arg, "--task-arg"),
    )


def run(args: argparse.Namespace) -> int:
    from sweeps.commands.train_console import run_console

    return run_console(args, config_from_args(args))
