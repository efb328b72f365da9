"""Read one sweep's runs from MLflow (any tracking URI), relying only on the MLflow layout contract.

The sweep's parent run carries ``dropattack.role=sweep``; its trials are the runs tagged
``mlflow.parentRunId=<parent>``. Runs are read in pages with ``search_runs`` (params, final
metrics and tags come with each run); per-epoch history is fetched only on request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from sweeps.records.bulk import bulk_readable, read_runs
from sweeps.records.selection import DEFAULT_METRIC, DEFAULT_MODE
from sweeps.records.tracking import CHECKPOINT_ARTIFACT, TAG, param_value
from sweeps.specs.space import canonical_cell

__all__ = [
    "CHECKPOINT_ARTIFACT",
    "CONFIRMS_TAG",
    "confirm_experiment",
    "collect_confirmation",
    "default_tracking_uri",
    "RunRecord",
    "SweepRuns",
    "check_store",
    "checkpoint_path",
    "collect",
    "metric_history",
    "with_stand_ins",
]

_PAGE = 1000
#: Tag of a confirmation sweep's parent run: the id of the sweep parent run it confirms.
CONFIRMS_TAG = TAG["confirms"]
_HOW_TO_SWEEP = (
    "run a sweep first, e.g. `dropattack sweep SPEC --mlflow-uri URI` "
    "(the experiment is named after the spec)"
)


@dataclass
class RunRecord:
    """What the report needs of one MLflow run."""

    run_id: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int | None = None
    end_time: int | None = None

    @classmethod
    def from_run(cls, run: Run) -> RunRecord:
        return cls(
            run_id=run.info.run_id,
            status=run.info.status,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
            start_time=run.info.start_time,
            end_time=run.info.end_time,
        )

    @property
    def cell(self) -> str:
        """The configuration key without the seed: the contract's tag (as
        :func:`~sweeps.specs.space.cell_key` writes it now, whichever version wrote it), else built
        from params."""
        tag = self.tags.get(TAG["cell"])
        if tag:
            return canonical_cell(tag)
        return ";".join(f"{k}={v}" for k, v in sorted(self.params.items()) if k != "seed")

    @property
    def name(self) -> str:
        """The configuration's readable name (:func:`sweeps.specs.names.config_name`): the
        ``dropattack.name`` tag, else the run name without its seed, else the cell key."""
        tag = self.tags.get(TAG["name"])
        if tag:
            return tag
        run_name = self.tags.get("mlflow.runName", "")
        suffix = f" s{self.params.get('seed', '')}"
        if run_name.endswith(suffix) and len(run_name) > len(suffix):
            return run_name.removesuffix(suffix)
        return self.cell

    @property
    def error(self) -> str:
        return self.tags.get("dropattack.error", "")

    def stand_ins(self) -> list[RunRecord]:
        """This run once more for each cell its trial stands for (a training that other cells
        share, :mod:`sweeps.specs.merge`): the same run and metrics, with those cells' keys,
        names, variants and their own values of the fields that did not matter."""
        raw = self.tags.get(TAG["stands_for"])
        if not raw:
            return []
        try:
            entries = json.loads(raw)
        except ValueError:
            return []
        out = []
        for e in entries if isinstance(entries, list) else []:
            if not isinstance(e, dict) or "cell" not in e:
                continue
            params = dict(self.params)
            for name in ("eps", "p", "k", "groups"):
                if name in params and e.get(name) is not None:
                    params[name] = param_value(e[name])
            tags = {k: v for k, v in self.tags.items() if k != TAG["stands_for"]}
            tags |= {
                TAG["cell"]: str(e["cell"]),
                TAG["name"]: str(e.get("name") or e["cell"]),
                TAG["variant"]: str(e.get("variant") or ""),
                TAG["trial_key"]: str(e.get("key") or ""),
                "dropattack.trained_as": self.tags.get(TAG["cell"], ""),
            }
            out.append(dataclasses.replace(self, params=params, tags=tags))
        return out


@dataclass
class SweepRuns:
    """A sweep as stored: its parent run, every child run, and where they came from."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    parent: RunRecord
    runs: list[RunRecord]
    other_parents: list[RunRecord] = field(default_factory=list)

    @property
    def paper_table(self) -> str:
        """The parent's ``dropattack.paper_table`` tag, else the one most of its trials carry."""
        tag = self.parent.tags.get("dropattack.paper_table")
        if tag:
            return tag
        votes = Counter(r.tags.get("dropattack.paper_table", "") for r in self.runs)
        return votes.most_common(1)[0][0] if votes else ""

    @property
    def selection_metric(self) -> str:
        """The metric the sweep ranked configurations by (its spec's ``search.metric``, a
        param of the parent run); ``val_acc`` for sweeps that did not record it."""
        return self.parent.params.get("metric") or DEFAULT_METRIC

    @property
    def selection_mode(self) -> str:
        mode = self.parent.params.get("mode")
        return mode if mode in ("max", "min") else DEFAULT_MODE

    @property
    def seeds(self) -> set[str]:
        """Every seed a trial of this sweep ran with (finished or not)."""
        return {r.params["seed"] for r in self.runs if r.params.get("seed", "") != ""}

    @property
    def finished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "FINISHED"]

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "FAILED"]

    def status_counts(self) -> dict[str, int]:
        return dict(Counter(r.status for r in self.runs))


def with_stand_ins(runs: Iterable[RunRecord]) -> list[RunRecord]:
    """Each run, followed by its :meth:`RunRecord.stand_ins`: every cell of the grid."""
    out: list[RunRecord] = []
    for run in runs:
        out += [run, *run.stand_ins()]
    return out


def default_tracking_uri(runs_dir: str | os.PathLike = "runs") -> str:
    """Where sweeps write unless told otherwise: MLFLOW_TRACKING_URI, else the sqlite store
    ``RUNS_DIR/mlflow.db`` that ``dropattack sweep`` uses by default."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(runs_dir) / 'mlflow.db').resolve()}"


def check_store(uri: str) -> None:
    """A sqlite store must exist: opening a missing one would create an empty database."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ValueError(
                f"no MLflow store at {path} ({uri}); pass the tracking URI the sweep used "
                f"with --mlflow-uri, or {_HOW_TO_SWEEP}."
            )


def _search(
    client: MlflowClient, experiment_id: str, filter_string: str, order: str = "DESC"
) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=_PAGE,
            order_by=[f"attributes.start_time {order}", f"attributes.run_id {order}"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _runs(
    client: MlflowClient, experiment_id: str, tag: str, value: str, order: str = "DESC"
) -> list[RunRecord]:
    """The active runs of the experiment tagged ``tag = value``, as ``search_runs`` orders
    them: read in bulk from a sqlite or PostgreSQL store, else through MLflow."""
    if bulk_readable(client.tracking_uri):
        return [
            RunRecord(**r) for r in read_runs(client.tracking_uri, experiment_id, tag, value, order)
        ]
    where = f"tags.`{tag}` = '{value}'"
    return [RunRecord.from_run(r) for r in _search(client, experiment_id, where, order)]


def _experiment_id(client: MlflowClient, experiment: str, uri: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is not None and found.lifecycle_stage == "active":
        return found.experiment_id
    if found is not None:
        raise ValueError(
            f"MLflow experiment {experiment!r} at {uri} is deleted; restore it with "
            f"`mlflow experiments restore --experiment-id {found.experiment_id}` "
            f"(MLFLOW_TRACKING_URI={uri}) or run its sweep again."
        )
    names = sorted(e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY))
    listed = ", ".join(names) if names else "none"
    raise ValueError(
        f"no MLflow experiment named {experiment!r} at {uri}; experiments there: {listed}. "
        f"To create it, {_HOW_TO_SWEEP}."
    )


def _pick_parent(
    parents: list[RunRecord], parent: str | None, experiment: str, total: int
) -> RunRecord:
    if not parents:
        raise ValueError(
            f"experiment {experiment!r} has no sweep parent run (tag dropattack.role=sweep) "
            f"among its {total} runs; report reads sweeps written by `dropattack sweep`: "
            f"{_HOW_TO_SWEEP}."
        )
    if parent is None:
        return parents[0]  # newest first
    for p in parents:
        if p.run_id == parent:
            return p
    ids = ", ".join(p.run_id for p in parents)
    raise ValueError(
        f"--parent {parent!r} is not a sweep parent run of experiment {experiment!r}; "
        f"its sweep parent runs (newest first) are: {ids}."
    )


def collect(
    experiment: str,
    tracking_uri: str | None = None,
    parent: str | None = None,
    client: MlflowClient | None = None,
    require_finished: bool = True,
) -> SweepRuns:
    """Every child run of the sweep ``experiment`` (newest parent, or the ``parent`` run id).

    Raises ValueError naming what is missing (experiment, parent run, and with
    ``require_finished`` a FINISHED trial) and how to create it.
    """
    uri = tracking_uri or (client.tracking_uri if client else default_tracking_uri())
    check_store(uri)
    client = client or MlflowClient(uri)
    exp_id = _experiment_id(client, experiment, uri)
    parents = _runs(client, exp_id, TAG["role"], "sweep")
    total = 0 if parents else len(_search(client, exp_id, ""))
    chosen = _pick_parent(parents, parent, experiment, total)
    children = with_stand_ins(_runs(client, exp_id, "mlflow.parentRunId", chosen.run_id, "ASC"))
    sweep = SweepRuns(
        tracking_uri=uri,
        experiment=experiment,
        experiment_id=exp_id,
        parent=chosen,
        runs=children,
        other_parents=[p for p in parents if p.run_id != chosen.run_id],
    )
    if require_finished and not sweep.finished:
        counts = sweep.status_counts()
        by_status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no runs at all"
        errors = sorted({r.error for r in sweep.failed if r.error})
        why = f"; trial errors: {'; '.join(errors[:3])}" if errors else ""
        raise ValueError(
            f"sweep {experiment!r} (parent run {chosen.run_id}) has no FINISHED trial runs "
            f"to report on ({by_status}){why}. Wait for the sweep to finish, or re-run it: "
            f"`dropattack sweep SPEC --mlflow-uri {uri}`."
        )
    return sweep


def metric_history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    """A run's per-step values of ``key`` as (step, value), in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def checkpoint_path(
    client: MlflowClient, run_id: str, dst: str | os.PathLike | None = None
) -> Path:
    """Download the run's ``checkpoint/best.pt`` and return its local path.

    Raises ValueError when the run has no checkpoint, saying how to get one.
    """
    listed = {a.path for a in client.list_artifacts(run_id, "checkpoint")}
    if CHECKPOINT_ARTIFACT not in listed:
        have = ", ".join(sorted(a.path for a in client.list_artifacts(run_id))) or "none"
        raise ValueError(
            f"run {run_id} has no artifact {CHECKPOINT_ARTIFACT} (its artifacts: {have}); "
            "its trial did not finish, or its sweep spec set `keep_checkpoint: false`: re-run "
            "the sweep with `keep_checkpoint: true` in the spec (the default), so that each "
            f"finished trial logs its best weights as {CHECKPOINT_ARTIFACT}."
        )
    dst = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="dropattack-ckpt-"))
    with contextlib.suppress(FileExistsError):
        dst.mkdir(parents=True)
    return Path(client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, str(dst)))


def confirm_experiment(experiment: str) -> str:
    """The MLflow experiment of ``experiment``'s confirmation sweeps."""
    return f"{experiment}-confirm"


def collect_confirmation(sweep: SweepRuns, client: MlflowClient | None = None) -> SweepRuns | None:
    """The newest confirmation sweep of ``sweep`` with its runs; None when there is none.

    A confirmation is a sweep parent run tagged ``dropattack.confirms=<the sweep's parent run
    id>``, in ``EXPERIMENT-confirm`` or, named with ``dropattack confirm --experiment``, in
    any experiment. When the sweep's parent has none, the confirmation of another parent of
    the same spec (same ``dropattack.spec_hash``: the same seeded trials, so the same cells)
    counts, newest parent first: a sweep run twice keeps its confirmation.
    """
    client = client or MlflowClient(sweep.tracking_uri)
    spec_hash = sweep.parent.tags.get(TAG["spec_hash"])
    candidates = [sweep.parent] + [
        p for p in sweep.other_parents if spec_hash and p.tags.get(TAG["spec_hash"]) == spec_hash
    ]
    default = client.get_experiment_by_name(confirm_experiment(sweep.experiment))
    first = [default.experiment_id] if default and default.lifecycle_stage == "active" else []
    others: list[str] | None = None
    for candidate in candidates:
        where = f"tags.`dropattack.role` = 'sweep' and tags.`{CONFIRMS_TAG}` = '{candidate.run_id}'"
        found = _search_many(client, first, where) if first else []
        if not found:
            if others is None:
                others = [
                    e.experiment_id
                    for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
                    if e.experiment_id not in first
                ]
            found = _search_many(client, others, where) if others else []
        if found:
            return _confirmation(client, sweep, found)
    return None


def _search_many(client: MlflowClient, experiment_ids: list[str], where: str) -> list[Run]:
    """Runs of several experiments matching ``where``, newest first (one page: confirmation
    parents are few)."""
    return list(
        client.search_runs(
            experiment_ids,
            filter_string=where,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=_PAGE,
            order_by=["attributes.start_time DESC", "attributes.run_id DESC"],
        )
    )


def _confirmation(client: MlflowClient, sweep: SweepRuns, parents: list[Run]) -> SweepRuns:
    newest = parents[0]
    exp_id = newest.info.experiment_id
    children = with_stand_ins(
        _runs(client, exp_id, "mlflow.parentRunId", newest.info.run_id, "ASC")
    )
    return SweepRuns(
        tracking_uri=sweep.tracking_uri,
        experiment=client.get_experiment(exp_id).name,
        experiment_id=exp_id,
        parent=RunRecord.from_run(newest),
        runs=children,
        other_parents=[RunRecord.from_run(r) for r in parents[1:]],
    )
