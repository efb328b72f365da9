"""``dropattack landscape RUN_ID [--other RUN_ID] [--grid N] [--span S]``: loss landscapes
around trained runs' best weights.

Each run's ``checkpoint/best.pt`` (logged by its sweep trial unless the spec says
``keep_checkpoint: false``) is loaded into its task's model, rebuilt from the run's params
(``task``, ``data_dir``, ``vectors`` and the ``model.<name>`` overrides), and the loss is
evaluated along one filter-normalised random direction (the 1-D curve of the paper's Figure 3,
every run on one axis) and on a grid of two (2-D contours and 3-D surfaces, Figures 5 and 6),
with the same directions seed for every run, so a standard and a DropAttack run compare as in
the paper. ``--other`` names the run to compare with (``RUN_ID...`` and ``--steps`` are kept as
aliases of several run ids and of ``--grid``). Writes landscape-1d.png, landscape.png and
landscape.json, and logs them to each run. MLflow's download progress bar is off.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sweeps.commands.argtypes import (
    add_store_flags,
    data_root,
    output_dir,
    positive_int,
    resolve_tracking_uri,
)

if TYPE_CHECKING:  # imported in run(): torch, MLflow and matplotlib take seconds
    from mlflow import MlflowClient

    from sweeps.landscape import Landscape, LossCurve

NAME = "landscape"
HELP = (
    "Loss landscape around the best weights of trained runs, read from their MLflow "
    "checkpoints: the 1-D curve of both runs on one axis, 2-D contours and 3-D surfaces."
)
ARTIFACT_DIR = "landscape"
#: MLflow reads it at each download; its tqdm bar would print into the command's output.
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _odd_grid(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 3 or n % 2 == 0:
        raise argparse.ArgumentTypeError(
            f"expected an odd number >= 3 (the trained weights are the centre), got {text!r}"
        )
    return n


def _span(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        s = 0.0
    if not 0 < s < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "%(prog)s RUN_ID [--other RUN_ID] [--grid N] [--span S] [options]"
    parser.add_argument(
        "run_ids",
        nargs="+",
        metavar="RUN_ID",
        help="MLflow run id of a trial (several may be given, as with --other)",
    )
    parser.add_argument(
        "--other",
        action="append",
        default=[],
        metavar="RUN_ID",
        help="a run to compare with, drawn with the first on the same axes (e.g. the standard "
        "baseline beside DropAttack); may be repeated",
    )
    add_store_flags(parser, experiment=False)
    parser.add_argument(
        "--split",
        default="test",
        choices=("train", "val", "test"),
        help="data to evaluate on (default: %(default)s)",
    )
    parser.add_argument(
        "--samples",
        type=positive_int,
        default=512,
        help="examples evaluated per point, at most the split's size (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=256,
        help="evaluation batch size (default: %(default)s)",
    )
    parser.add_argument(
        "--grid",
        "--steps",
        dest="grid",
        type=_odd_grid,
        default=21,
        metavar="N",
        help="points per axis of the 2-D grid, odd (default: %(default)s); the 1-D curve has "
        "2N - 1",
    )
    parser.add_argument(
        "--span",
        type=_span,
        default=1.0,
        metavar="S",
        help="the grid covers [-S, S]^2 and the curve [-S, S] (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random directions (default: %(default)s)"
    )
    parser.add_argument(
        "--out", type=output_dir, default=None, help="output folder (default: RUNS_DIR/landscape)"
    )
    parser.add_argument("--no-log", action="store_true", help="do not log files to the runs")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=os.environ.get("DROPATTACK_THREADS") or None,
        help="CPU threads for torch, as `dropattack train` takes them (default: "
        "$DROPATTACK_THREADS, else the CPUs other processes leave idle, at least 1)",
    )
    parser.add_argument(
        "--data-dir",
        type=data_root,
        metavar="DIR",
        help="data root to rebuild the runs' data from (default: the data_dir each run "
        "logged, else $DROPATTACK_DATA)",
    )


def _params(client: MlflowClient, run_id: str, uri: str) -> tuple[dict[str, str], str]:
    """The run's params and its variant tag (the paper table's row label; may be empty)."""
    from mlflow.exceptions import MlflowException

    from sweeps.records.tracking import TAG

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ValueError(
            f"no MLflow run {run_id!r} at {uri}; list a sweep's trial runs and their ids with "
            f"`dropattack runs EXPERIMENT --mlflow-uri {uri}`"
        ) from None
    if "task" not in run.data.params:
        raise ValueError(
            f"run {run_id} has no 'task' param, so its model cannot be rebuilt; landscapes "
            "need trial runs written by `dropattack sweep` or `dropattack train --mlflow-uri`"
        )
    return dict(run.data.params), run.data.tags.get(TAG["variant"], "")


def _load_model(params: Mapping[str, str], ckpt: Path, run_id: str, data_dir: str | None):
    import torch

    from models import tasks
    from models.data import DataOptions
    from sweeps.records.tracking import model_overrides

    task_args = json.loads(params["task_args"]) if params.get("task_args") else None
    task = tasks.get(params["task"], task_args)  # a task of the user's: imports its code
    size = params.get("train_size")
    data = task.load(
        DataOptions(
            data_dir=data_dir or params.get("data_dir") or None,
            train_size=int(size) if size and size != "None" else None,
            vectors=params.get("vectors") or None,
        )
    )
    model = task.build_model(data, **model_overrides(params))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"run {run_id}: checkpoint/best.pt is not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ValueError(
            f"run {run_id}: checkpoint/best.pt does not fit task {task.name}'s model built "
            f"from the run's params ({first}); was the trial run with other model options?"
        ) from None
    return model, data


def _batches(data, split: str, samples: int, batch_size: int) -> tuple[list, int]:
    """The first ``samples`` examples of ``split`` in batches, and how many there are (at
    most the split's size)."""
    out, n = [], 0
    for x, y in data.batches(split, batch_size):
        take = min(len(y), samples - n)
        out.append((x[:take], y[:take]))
        n += take
        if n >= samples:
            break
    return out, n


def _progress(run_id: str) -> Callable[[str], Callable[[int, int], None]]:
    """Per stage, a callback printing ``run: stage done/total points`` at each quarter."""

    def stage(name: str) -> Callable[[int, int], None]:
        shown = [0]

        def say(done: int, total: int) -> None:
            quarter = 4 * done // total
            if quarter > shown[0]:
                shown[0] = quarter
                print(f"  {run_id[:8]}: {name} {done}/{total} points", flush=True)

        return say

    return stage


def run(args: argparse.Namespace) -> int:
    uri = resolve_tracking_uri(args.mlflow_uri, args.runs_dir, existing=True)
    os.environ[PROGRESS_BAR_ENV] = "false"
    import torch
    from mlflow import MlflowClient

    from sweeps.execution.threads import default_threads
    from sweeps.landscape import loss_curve, loss_surface, plot_curves, plot_landscapes
    from sweeps.records.collect import checkpoint_path

    threads = int(args.threads or default_threads())
    torch.set_num_threads(threads)
    print(
        f"landscape of {len(set([*args.run_ids, *args.other]))} run(s): a {args.grid}x{args.grid} "
        f"grid and a {2 * args.grid - 1}-point curve each, {threads} thread(s)",
        flush=True,
    )

    run_ids = list(dict.fromkeys([*args.run_ids, *args.other]))
    client = MlflowClient(uri)
    out = Path(args.out) if args.out else Path(args.runs_dir) / "landscape"
    out.mkdir(parents=True, exist_ok=True)
    surfaces: list[tuple[str, Landscape]] = []
    curves: list[tuple[str, LossCurve]] = []
    evaluated: dict[str, dict[str, int]] = {}
    for run_id in run_ids:
        params, variant = _params(client, run_id, uri)
        ckpt = checkpoint_path(client, run_id, out / run_id)
        model, data = _load_model(params, ckpt, run_id, args.data_dir)
        batches, n = _batches(data, args.split, args.samples, args.batch_size)
        size = data.sizes[args.split]
        evaluated[run_id] = {"samples": n, "split_size": size}
        say = _progress(run_id)
        curve = loss_curve(
            model, batches, span=args.span, steps=2 * args.grid - 1, seed=args.seed,
            progress=say("1-D curve"),
        )  # fmt: skip
        land = loss_surface(
            model, batches, span=args.span, steps=args.grid, seed=args.seed,
            progress=say("grid"),
        )  # fmt: skip
        label = f"{params['task']} {params.get('method', '')}".strip()
        title = (
            f"{params['task']} {variant or params.get('method', '')} ({run_id[:8]}; "
            f"{args.split} {n})"
        )
        curves.append((title, curve))
        surfaces.append((title, land))
        da, db = land.argmin()
        print(
            f"{run_id}: {label}: {n} of the {size} {args.split} examples; centre loss "
            f"{land.centre_loss:.4f}, 1-D curve minimum at δ={curve.argmin():g}, grid minimum "
            f"at (δ={da:g}, η={db:g})"
        )
    counts = {e["samples"] for e in evaluated.values()}
    files = [out / "landscape-1d.png", out / "landscape.png", out / "landscape.json"]
    files[0].write_bytes(plot_curves(curves))
    files[1].write_bytes(plot_landscapes(surfaces))
    files[2].write_text(
        json.dumps(
            {
                "split": args.split,
                "samples": counts.pop() if len(counts) == 1 else None,  # per run otherwise
                "seed": args.seed,
                "span": args.span,
                "grid": args.grid,
                "runs": {
                    rid: {**evaluated[rid], **land.as_dict(), "curve": curve.as_dict()}
                    for rid, (_, land), (_, curve) in zip(run_ids, surfaces, curves, strict=True)
                },
            }
        )
    )
    print(f"wrote {', '.join(str(f) for f in files)}")
    if not args.no_log:
        for run_id in run_ids:
            for f in files:
                client.log_artifact(run_id, str(f), ARTIFACT_DIR)
        print(f"logged them to {len(run_ids)} run(s) under {ARTIFACT_DIR}/")
    return 0
