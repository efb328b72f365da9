"""``dropattack landscape RUN_ID...``: loss landscapes around trained runs' best weights.

Each run's ``checkpoint/best.pt`` (logged by its sweep trial unless the spec says
``keep_checkpoint: false``) is loaded into its task's model, rebuilt from the run's params
(``task``, ``data_dir``, ``vectors`` and the ``model.<name>`` overrides), and the loss is
evaluated on a grid of two filter-normalised random directions (the same directions seed for
every run, so standard and DropAttack runs compare as in the paper's Figures 3, 5 and 6).
Writes landscape.png and landscape.json, and logs both to each run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models import tasks
from models.data import DataOptions
from sweeps.landscape import Landscape, loss_surface, plot_landscapes
from sweeps.report.collect import check_store, checkpoint_path, default_tracking_uri
from sweeps.tracking import model_overrides

NAME = "landscape"
HELP = (
    "Loss landscape (2-D contours and 3-D surface) around the best weights of trained runs, "
    "read from their MLflow checkpoints."
)
ARTIFACT_DIR = "landscape"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="MLflow run id of a trial")
    parser.add_argument(
        "--mlflow-uri",
        default=None,
        help="tracking URI of the runs (default: MLFLOW_TRACKING_URI, else "
        "sqlite:///RUNS_DIR/mlflow.db, where `dropattack sweep` writes by default)",
    )
    parser.add_argument(
        "--runs-dir", default="runs", help="local folder of the sweep's store (default: runs)"
    )
    parser.add_argument(
        "--split", default="test", choices=("train", "val", "test"), help="data to evaluate on"
    )
    parser.add_argument("--samples", type=int, default=512, help="examples evaluated per point")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=21, help="grid points per axis (odd)")
    parser.add_argument("--span", type=float, default=1.0, help="grid covers [-span, span]^2")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    parser.add_argument("--out", default=None, help="output folder (default: RUNS_DIR/landscape)")
    parser.add_argument("--no-log", action="store_true", help="do not log files to the runs")


def _params(client: MlflowClient, run_id: str, uri: str) -> dict[str, str]:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ValueError(
            f"no MLflow run {run_id!r} at {uri}; list a sweep's trial runs with "
            "`dropattack report EXPERIMENT --format json` (cells[].run ids) or the MLflow UI"
        ) from None
    if "task" not in run.data.params:
        raise ValueError(
            f"run {run_id} has no 'task' param, so its model cannot be rebuilt; landscapes "
            "need trial runs written by `dropattack sweep` or `dropattack train --mlflow-uri`"
        )
    return dict(run.data.params)


def _load_model(params: Mapping[str, str], ckpt: Path, run_id: str):
    task = tasks.get(params["task"])
    size = params.get("train_size")
    data = task.load(
        DataOptions(
            data_dir=params.get("data_dir") or None,
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


def _batches(data, split: str, samples: int, batch_size: int) -> list:
    out, n = [], 0
    for x, y in data.batches(split, batch_size):
        take = min(len(y), samples - n)
        out.append((x[:take], y[:take]))
        n += take
        if n >= samples:
            break
    return out


def run(args: argparse.Namespace) -> int:
    if args.samples < 1:
        raise ValueError(f"--samples: expected a positive number, got {args.samples}")
    uri = args.mlflow_uri or default_tracking_uri(args.runs_dir)
    check_store(uri)
    client = MlflowClient(uri)
    out = Path(args.out) if args.out else Path(args.runs_dir) / "landscape"
    out.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, Landscape]] = []
    for run_id in args.run_ids:
        params = _params(client, run_id, uri)
        ckpt = checkpoint_path(client, run_id, out / run_id)
        model, data = _load_model(params, ckpt, run_id)
        batches = _batches(data, args.split, args.samples, args.batch_size)
        land = loss_surface(model, batches, span=args.span, steps=args.steps, seed=args.seed)
        label = f"{params['task']} {params.get('method', '')}".strip()
        results.append((f"{label} ({run_id[:8]})", land))
        da, db = land.argmin()
        print(
            f"{run_id}: {label}: centre loss {land.centre_loss:.4f}, "
            f"grid minimum at (δ={da:g}, η={db:g})"
        )
    png, js = out / "landscape.png", out / "landscape.json"
    png.write_bytes(plot_landscapes(results))
    js.write_text(
        json.dumps(
            {
                "split": args.split,
                "samples": args.samples,
                "seed": args.seed,
                "runs": {
                    rid: land.as_dict()
                    for rid, (_, land) in zip(args.run_ids, results, strict=True)
                },
            }
        )
    )
    print(f"wrote {png} and {js}")
    if not args.no_log:
        for run_id in args.run_ids:
            client.log_artifact(run_id, str(png), ARTIFACT_DIR)
            client.log_artifact(run_id, str(js), ARTIFACT_DIR)
        print(f"logged both to {len(args.run_ids)} run(s) under {ARTIFACT_DIR}/")
    return 0
