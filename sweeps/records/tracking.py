"""MLflow records of a sweep: one parent run (the driver) and one nested child run per trial.

The child run is created *inside* the trial process, from the tracking URI and parent run id
the driver hands over, so trials on other nodes log directly (on a cluster: an HTTP tracking
URI whose server serves artifacts). Everything a trial logs goes through
:class:`TrialTracker`'s buffer: it is sent at the end of each epoch and at the end of the
trial, kept on connection errors and sent again later, and saved with every checkpoint, so a
restarted trial sends what its previous process could not. Nothing is dropped: if MLflow is
still unreachable when the trial ends, the buffer is written to a file and the trial fails.
Files (the best-weights checkpoint) are buffered by path: the file stays on local disk until
MLflow has taken it.

The layout (tags, params, metrics) is the contract in the project's notes; the report
reads runs by these tags.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from sweeps.records.mlflow_login import use_forwarded_login
from sweeps.records.store import UnreachableError, is_local_store, probe, sqlite_uri

__all__ = [
    "CHECKPOINT_ARTIFACT",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "MODEL_PARAM_PREFIX",
    "TAG",
    "SweepContext",
    "SweepRun",
    "TrackingError",
    "TrialTracker",
    "UnreachableError",
    "client_for",
    "compare_url",
    "experiment_url",
    "model_overrides",
    "param_value",
    "probe",
    "sqlite_uri",
]

#: Tag names of the MLflow layout contract.
TAG = {
    "role": "dropattack.role",
    "spec": "dropattack.spec",
    "spec_hash": "dropattack.spec_hash",
    "git_commit": "dropattack.git_commit",
    "command": "dropattack.command",
    "paper_table": "dropattack.paper_table",
    "cell": "dropattack.cell",
    "name": "dropattack.name",
    "variant": "dropattack.variant",
    "trial_id": "dropattack.trial_id",
    "trial_key": "dropattack.trial_key",
    "trial_hash": "dropattack.trial_hash",
    "error": "dropattack.error",
    "error_type": "dropattack.error_type",
    "error_kind": "dropattack.error_kind",
    "stopped": "dropattack.stopped",
    "confirms": "dropattack.confirms",
    "stands_for": "dropattack.stands_for",
    "parent": "mlflow.parentRunId",
}

#: The experiment tag MLflow's UI reads for an experiment's kind, and the value that marks
#: model training ("Machine learning" in MLflow 3's kind selector; GenAI experiments open on
#: traces instead of runs).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: MLflow 3.17's UI picks the landing tab from its own "workflow type" (GenAI or model
#: training), not from the tag: the address's ``workflowType`` query, else the browser's
#: localStorage key :data:`UI_WORKFLOW_STORAGE_KEY` (default GenAI). Links the service prints
#: carry the query and the experiment's ``/runs`` route, so they open on the runs table.
UI_WORKFLOW = "workflowType=machine_learning"
#: Where MLflow 3.17's UI keeps the browser's choice (``useLocalStorage({key:
#: "mlflow.workflowType", version: 1})`` in its bundle stores under ``KEY_v1``).
UI_WORKFLOW_STORAGE_KEY = "mlflow.workflowType_v1"

#: A finished trial's best-on-validation weights (a state dict saved with ``torch.save``).
CHECKPOINT_ARTIFACT = "checkpoint/best.pt"
#: Params named ``model.<name>`` hold the trial's model overrides (``model.embed_dim``).
MODEL_PARAM_PREFIX = "model."

_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100  # MLflow's log_batch limits
_BATCHED = {"metric": _MAX_METRICS, "param": _MAX_PARAMS, "tag": _MAX_TAGS}
_PARAM_LEN = 6000
# MLflow's own HTTP retries wait minutes on a dead server; the buffer retries instead.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
# Error codes that retrying cannot fix (a bug or a deleted run), as opposed to outages.
_PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST"}
# ... except a unique-key violation: the same records sent twice at once (a request that timed
# out, resent while the server still wrote it) race to insert a param. The first write won;
# sent again, the records are found already there and skipped (a changed value still fails).
_RACED = ("UniqueViolation", "duplicate key value", "UNIQUE constraint failed")


_log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """MLflow could not take a trial's records before the retry deadline."""


_CLIENTS: dict[str, MlflowClient] = {}


def client_for(uri: str) -> MlflowClient:
    """One client per URI and process: a sqlite store checks its schema once, not per trial."""
    for k, v in _HTTP_DEFAULTS.items():
        os.environ.setdefault(k, v)
    use_forwarded_login()  # a login forwarded to this Ray job, kept out of os.environ
    if uri not in _CLIENTS:
        _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
    return _CLIENTS[uri]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class SweepContext:
    """What a trial needs to log into its sweep: handed from the driver to every trial."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    sweep: str
    paper_table: str = ""
    algorithm: str = "grid"
    keep_checkpoint: bool = True  # the spec's ``keep_checkpoint``: log checkpoint/best.pt
    system_metrics: float = 0.0  # seconds between MLflow system-metrics samples; 0: none

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SweepRun:
    """The sweep's parent run, driven by the driver process."""

    def __init__(self, uri: str, experiment: str, artifact_root: str | Path | None = None):
        self.uri = uri
        self.client = client_for(uri)
        self.experiment_id = self._experiment(experiment, artifact_root)
        self.run_id = ""

    def _experiment(self, name: str, artifact_root: str | Path | None) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage != "active":
                self.client.restore_experiment(found.experiment_id)
            if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                self.client.set_experiment_tag(
                    found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
                )
            return found.experiment_id
        location = None
        if artifact_root is not None and is_local_store(self.uri):
            location = (Path(artifact_root).resolve() / name).as_uri()
        return self.client.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )

    def start(
        self,
        spec_name: str,
        spec_hash: str,
        paper_table: str,
        git_commit: str,
        command: str,
        params: Mapping[str, Any],
        files: Mapping[str, str],
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Create the parent run with the contract's tags (and ``tags``); ``files`` as text."""
        tags = {
            **(tags or {}),
            TAG["role"]: "sweep",
            TAG["spec"]: spec_name,
            TAG["spec_hash"]: spec_hash,
            TAG["git_commit"]: git_commit,
            TAG["command"]: command,
            TAG["paper_table"]: paper_table,
        }
        run = self.client.create_run(self.experiment_id, run_name=spec_name, tags=tags)
        self.run_id = run.info.run_id
        self.client.log_batch(
            self.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()]
        )
        for name, text in files.items():
            self.client.log_text(self.run_id, text, name)
        return self.run_id

    def reopen(self, run_id: str) -> None:
        """Mark an interrupted sweep's parent run as running again (``--resume``)."""
        self.client.get_run(run_id)
        self.run_id = run_id
        self.client.update_run(run_id, status="RUNNING")

    def finish(self, status: str, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        """Log the sweep's summary and close the parent run (FINISHED, FAILED or KILLED)."""
        ts = _now_ms()
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        self.client.set_terminated(self.run_id, status=status)

    def mark_stopped(self, trial_ids: set[str]) -> int:
        """Close the still-RUNNING child runs of trials the scheduler stopped as KILLED.

        A trial stopped by ASHA ends inside Tune without its code seeing an exception, so its
        run is closed here, from the driver, tagged ``dropattack.stopped=tune``.
        """
        if not trial_ids or not self.run_id:
            return 0
        runs = self._running_children()
        closed = 0
        for run in runs:
            if run.data.tags.get(TAG["trial_id"]) in trial_ids:
                self.client.set_tag(run.info.run_id, TAG["stopped"], "tune")
                self.client.set_terminated(run.info.run_id, status="KILLED")
                closed += 1
        return closed

    def _running_children(self) -> list:
        """The sweep's child runs still marked RUNNING."""
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.run_id}' "
            "and attributes.status = 'RUNNING'",
            max_results=5000,
        )

    def mark_unfinished(self) -> int:
        """Close the still-RUNNING child runs of an interrupted sweep as KILLED.

        Tune's graceful stop ends the trials' processes without their code seeing it, so
        their runs are closed here; ``--resume`` continues each trial in its own run (the
        trainable reopens it). Returns how many were closed.
        """
        if not self.run_id:
            return 0
        runs = self._running_children()
        for run in runs:
            self.client.set_terminated(run.info.run_id, status="KILLED")
        return len(runs)

    def ui_command(self) -> str:
        """The command that opens the MLflow UI on this sweep's runs."""
        if is_local_store(self.uri):
            return f"{_mlflow_executable()} ui --backend-store-uri {self.uri}"
        return f"open {self.ui_url()}"

    def ui_url(self) -> str:
        """The address of this sweep's runs in the UI (``mlflow ui``'s default for a local
        store)."""
        server = "http://127.0.0.1:5000" if is_local_store(self.uri) else self.uri
        return experiment_url(server, self.experiment_id)


def experiment_url(server: str, experiment_id: str) -> str:
    """The UI's runs table of an experiment (see :data:`UI_WORKFLOW`)."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{UI_WORKFLOW}"


def compare_url(server: str, experiment_id: str, run_ids: list[str]) -> str:
    """The UI's comparison view of ``run_ids`` (params and metrics side by side)."""
    query = urlencode(
        {"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id])},
        quote_via=quote,
    )
    return f"{server.rstrip('/')}/#/compare-runs?{query}&{UI_WORKFLOW}"


def _mlflow_executable() -> str:
    """The ``mlflow`` beside this Python (``.venv/bin/mlflow``) as a command that works from
    any folder: ``mlflow`` when that is the one on PATH, else its absolute path."""
    beside = Path(sys.executable).parent / "mlflow"
    if not beside.is_file() or shutil.which("mlflow") == str(beside):
        return "mlflow"
    return shlex.quote(str(beside.absolute()))


def param_value(value: Any) -> str:
    """A trial field as an MLflow param value (what a run's params hold)."""
    return _param_value(value)


def _param_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = ";".join(map(str, value))
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    elif value is None:
        value = ""
    return str(value)[:_PARAM_LEN]


def model_overrides(params: Mapping[str, str]) -> dict[str, Any]:
    """A run's ``model.<name>`` params back as model keyword arguments (``"300"`` -> 300)."""
    out: dict[str, Any] = {}
    for key, text in params.items():
        if key.startswith(MODEL_PARAM_PREFIX):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = text
            out[key.removeprefix(MODEL_PARAM_PREFIX)] = text if value is None else value
    return out


def _permanent(e: Exception) -> bool:
    if isinstance(e, TrackingError):
        return True
    if not isinstance(e, MlflowException) or e.error_code not in _PERMANENT:
        return False
    return not any(text in e.message for text in _RACED)


@functools.cache
def _system_metrics_monitor() -> type:
    """MLflow's system-metrics monitor (imported on first use: it needs ``psutil``), made to
    log at least one sample: a run shorter than a sampling interval gets one at its end."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    class TrialSystemMetrics(SystemMetricsMonitor):
        published = 0

        def publish_metrics(self, metrics: dict[str, float]) -> None:
            super().publish_metrics(metrics)
            self.published += 1

        def finish(self) -> None:
            super().finish()  # joins the sampling thread
            if self.published == 0:
                for monitor in self.monitors:
                    monitor.clear_metrics()
                self.collect_metrics()
                self.publish_metrics(self.aggregate_metrics())
                self.mlflow_logger.flush()

    return TrialSystemMetrics


class TrialTracker:
    """One trial's child run, buffered.

    ``pending`` (from a checkpoint) holds records an earlier process of this trial could not
    send; they go first. ``run_id`` is known once the run exists in MLflow.
    """

    def __init__(
        self,
        ctx: SweepContext,
        key: str,
        run_name: str,
        tags: Mapping[str, str],
        run_id: str | None = None,
        pending: list[dict[str, Any]] | None = None,
        spill_dir: str | Path | None = None,
    ) -> None:
        self.ctx = ctx
        self.key = key
        self.run_name = run_name
        self.tags = dict(tags)
        self.run_id = run_id
        self.pending: list[dict[str, Any]] = list(pending or [])
        self.spill_dir = Path(spill_dir) if spill_dir else None
        self.start_ms = _now_ms()
        self.status: str | None = None
        self.found = False  # the run existed before this process (a retry or a resume)
        self.last_error: str = ""
        self._monitor: Any = None
        self._monitor_wanted = False

    @property
    def hash(self) -> str:
        """Identifies the trial within its sweep in MLflow searches (quote-free)."""
        return hashlib.sha1(f"{self.ctx.parent_run_id}\n{self.key}".encode()).hexdigest()

    @property
    def client(self) -> MlflowClient:
        return client_for(self.ctx.tracking_uri)

    # -- opening

    def open(self) -> str | None:
        """Find this trial's run (a resumed or retried trial) or create it.

        Returns the found run's status (``FINISHED`` means the trial is done), or ``None``
        when MLflow is unreachable now: the run is created by a later flush.
        Raises on permanent errors (no such experiment, bad parent).
        """
        try:
            return self._find_or_create()
        except Exception as e:
            if _permanent(e):
                raise
            self.last_error = f"{type(e).__name__}: {e}"
            return None

    def _find_or_create(self) -> str:
        if self.run_id is not None:
            run = self.client.get_run(self.run_id)
            self.status = run.info.status
            self.found = True
            return self.status
        found = self.client.search_runs(
            [self.ctx.experiment_id],
            filter_string=(
                f"tags.`{TAG['parent']}` = '{self.ctx.parent_run_id}' "
                f"and tags.`{TAG['trial_hash']}` = '{self.hash}'"
            ),
            max_results=10,
            order_by=["attributes.start_time ASC"],
        )
        if found:
            run = found[0]
            self.run_id = run.info.run_id
            self.status = run.info.status
            self.found = True
            return self.status
        tags = {
            **self.tags,
            TAG["parent"]: self.ctx.parent_run_id,
            TAG["role"]: "trial",
            TAG["paper_table"]: self.ctx.paper_table,
            TAG["trial_key"]: self.key,
            TAG["trial_hash"]: self.hash,
        }
        run = self.client.create_run(
            self.ctx.experiment_id, start_time=self.start_ms, tags=tags, run_name=self.run_name
        )
        self.run_id = run.info.run_id
        self.status = "RUNNING"
        return "RUNNING"

    def run_data(self) -> tuple[dict[str, float], dict[str, str]]:
        """Final metrics and tags of the found run (to report a finished trial again)."""
        run = self.client.get_run(self.run_id)
        return dict(run.data.metrics), dict(run.data.tags)

    def restart(self) -> None:
        """A retried or resumed trial: running again, without a stale error or stop tag."""
        stale = [TAG["error"], TAG["error_type"], TAG["error_kind"], TAG["stopped"]]
        self.pending.insert(0, {"op": "reopen", "untag": stale})

    # -- system metrics (MLflow's own, straight to the run: samples, not records to keep)

    def start_system_metrics(self) -> None:
        """Sample CPU, memory, disk, network (GPU through NVML) onto the run every
        ``ctx.system_metrics`` seconds until :meth:`terminate`; nothing when that is 0.

        Sends what is pending first (a restarted run must be RUNNING again, or the monitor
        stops at once); while MLflow is unreachable, the flush that reaches it starts them.
        """
        if self.ctx.system_metrics <= 0:
            return
        self._monitor_wanted = True
        self.flush()

    def _start_monitor(self) -> None:
        if not self._monitor_wanted or self._monitor is not None or self.run_id is None:
            return
        self._monitor_wanted = False
        try:
            monitor = _system_metrics_monitor()(
                self.run_id,
                sampling_interval=self.ctx.system_metrics,
                resume_logging=self.found,
                tracking_uri=self.ctx.tracking_uri,
            )
        except Exception as e:  # psutil missing, most often: the trial runs without them
            _log.warning("no system metrics for run %s: %s: %s", self.run_id, type(e).__name__, e)
            return
        monitor.start()
        self._monitor = monitor

    def _stop_monitor(self) -> None:
        self._monitor_wanted = False
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            try:
                monitor.finish()
            except Exception as e:  # samples are best effort; the run's records are not
                _log.warning("system metrics of run %s: %s: %s", self.run_id, type(e).__name__, e)

    # -- recording (buffered)

    def log_params(self, params: Mapping[str, Any]) -> None:
        for k, v in params.items():
            self.pending.append({"op": "param", "key": k, "value": _param_value(v)})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self.pending.append({"op": "tag", "key": k, "value": str(v)})

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        ts = _now_ms()
        for k, v in metrics.items():
            if v is not None:
                self.pending.append(
                    {"op": "metric", "key": k, "value": float(v), "step": step, "ts": ts}
                )

    def log_text(self, text: str, name: str) -> None:
        self.pending.append({"op": "text", "name": name, "text": text})

    def log_file(self, path: str | Path, artifact_dir: str = "", remove: bool = False) -> None:
        """Queue the local file ``path`` as artifact ``artifact_dir/<its name>``.

        The file must stay where it is until it is sent (put it in ``spill_dir`` so that a
        spilled buffer still finds it); with ``remove`` it is deleted once MLflow has it.
        """
        self.pending.append(
            {
                "op": "file",
                "path": str(Path(path).resolve()),
                "dir": artifact_dir,
                "remove": bool(remove),
            }
        )

    def terminate(self, status: str, error: BaseException | str | None = None) -> None:
        """Queue the run's end: FINISHED, FAILED (with ``dropattack.error``) or KILLED."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"status: expected FINISHED, FAILED or KILLED, got {status!r}")
        self._stop_monitor()
        if error is not None:
            msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            kind = "" if isinstance(error, str) else type(error).__name__
            self.set_tags({TAG["error"]: msg[:5000], TAG["error_type"]: kind})
        self.pending.append({"op": "end", "status": status, "ts": _now_ms()})

    # -- sending

    def flush(self) -> bool:
        """Send what is pending; keep it on connection errors. True when nothing is left.

        Raises:
            MlflowException: a permanent error (an invalid value, a deleted run).
            TrackingError: a queued file is no longer on disk.
        """
        try:
            if self.run_id is None:
                self._find_or_create()
            while self.pending:
                self._send_some()
        except Exception as e:
            if _permanent(e):
                raise
            self.last_error = f"{type(e).__name__}: {e}"
            return False
        self._start_monitor()
        return True

    def flush_final(self, timeout: float | None = None) -> None:
        """Flush, retrying with back-off until ``timeout`` seconds have passed.

        Raises:
            TrackingError: still unsent at the deadline; the records are saved in
                ``spill_dir/mlflow_pending.json`` first.
        """
        if timeout is None:
            timeout = float(os.environ.get("DROPATTACK_MLFLOW_FLUSH_TIMEOUT_S", "120"))
        deadline = time.monotonic() + timeout
        delay = 0.5
        while not self.flush():
            if time.monotonic() + delay > deadline:
                saved = self._spill()
                raise TrackingError(
                    f"MLflow at {self.ctx.tracking_uri} took no records for {timeout:.0f}s "
                    f"({self.last_error}); {len(self.pending)} records saved in {saved}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _spill(self) -> str:
        folder = self.spill_dir or Path.cwd()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "mlflow_pending.json"
        path.write_text(json.dumps(self.state(), indent=1))
        return str(path)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the run id and the unsent records."""
        return {"run_id": self.run_id, "pending": list(self.pending)}

    def _send_some(self) -> None:
        """Send the first pending record (with the metrics, params and tags that follow it,
        in one batch), then drop what was sent."""
        rec = self.pending[0]
        if rec["op"] in _BATCHED:
            self._send_batch()
            return
        send = getattr(self, f"_send_{rec['op']}", None)
        if send is None:
            raise ValueError(f"unknown buffered record {rec!r}")
        send(rec)
        del self.pending[0]

    def _send_batch(self) -> None:
        batch: list[dict[str, Any]] = []
        counts = dict.fromkeys(_BATCHED, 0)
        for rec in self.pending:
            op = rec["op"]
            if op not in _BATCHED or counts[op] >= _BATCHED[op] or len(batch) >= _MAX_METRICS:
                break
            counts[op] += 1
            batch.append(rec)
        self.client.log_batch(
            self.run_id,
            metrics=[
                Metric(r["key"], r["value"], r["ts"], r["step"])
                for r in batch
                if r["op"] == "metric"
            ],
            params=[Param(r["key"], r["value"]) for r in _last_params(batch)],
            tags=[RunTag(r["key"], r["value"]) for r in batch if r["op"] == "tag"],
        )
        del self.pending[: len(batch)]

    def _send_text(self, rec: dict[str, Any]) -> None:
        self.client.log_text(self.run_id, rec["text"], rec["name"])

    def _send_file(self, rec: dict[str, Any]) -> None:
        path = Path(rec["path"])
        if not path.is_file():
            name = f"{rec['dir']}/{path.name}" if rec["dir"] else path.name
            raise TrackingError(
                f"artifact {name} of run {self.run_id}: the local file {path} queued for "
                "MLflow is gone (was the trial's folder deleted?)"
            )
        self.client.log_artifact(self.run_id, str(path), rec["dir"] or None)
        if rec["remove"]:
            path.unlink(missing_ok=True)

    def _send_reopen(self, rec: dict[str, Any]) -> None:
        tags = self.client.get_run(self.run_id).data.tags
        for key in rec["untag"]:
            if key in tags:
                self.client.delete_tag(self.run_id, key)
        self.client.update_run(self.run_id, status="RUNNING")

    def _send_end(self, rec: dict[str, Any]) -> None:
        self.client.set_terminated(self.run_id, status=rec["status"], end_time=rec["ts"])
        self.status = rec["status"]


def _last_params(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One value a param name (MLflow rejects a batch naming a param twice)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in batch:
        if r["op"] == "param":
            seen[r["key"]] = r
    return list(seen.values())
