"""The report's bulk reading of a sqlite store against MLflow's own ``search_runs`` reading.

A real store holds two experiments: a sweep's parent run with finished, failed, deleted and
nested runs beneath it (metrics logged over several steps, a NaN, equal start times), an older
sweep parent, and a run of another experiment tagged with the same parent. Reading each
selection in bulk must give exactly the runs, order, params, tags and latest metrics that
``search_runs`` gives. (The PostgreSQL store gets the same check in tests/cluster/test_scale.py.)
"""

from __future__ import annotations

import math
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

from sweeps.records.bulk import bulk_readable, read_runs
from sweeps.records.collect import RunRecord, collect

EXPERIMENT = "bulk-read"


def write_store(uri: str, name: str = EXPERIMENT) -> dict[str, str]:
    """The store described above; returns the experiment ids and the parent run ids."""
    client = MlflowClient(uri)
    exp = client.create_experiment(name)
    other = client.create_experiment(f"{name}-other")
    old = client.create_run(exp, start_time=1000, tags={"dropattack.role": "sweep"}).info.run_id
    client.set_terminated(old, "FINISHED")
    parent = client.create_run(
        exp, start_time=2000, tags={"dropattack.role": "sweep", "dropattack.paper_table": "t10"}
    ).info.run_id
    client.log_batch(parent, params=[Param("metric", "val_acc"), Param("mode", "max")])

    def child(i: int, start: int, experiment: str = exp, under: str = parent) -> str:
        rid = client.create_run(
            experiment,
            start_time=start,
            tags={"mlflow.parentRunId": under, "dropattack.role": "trial"},
            run_name=f"trial {i}",
        ).info.run_id
        client.log_batch(
            rid,
            metrics=[Metric("val_acc", 0.5 + 0.01 * s + i * 1e-4, 10 + s, s) for s in range(3)]
            + [Metric("test_acc", 0.6 + i * 1e-3, 5, 0)],
            params=[Param("seed", str(i)), Param("eps", "0.5"), Param("p", str(0.1 * i))],
            tags=[RunTag("dropattack.cell", f"eps=0.5;p={0.1 * i:g}")],
        )
        return rid

    runs = [child(i, 3000 + 10 * (i // 2)) for i in range(8)]  # pairs share a start time
    for rid in runs[:5]:
        client.set_terminated(rid, "FINISHED", end_time=9000)
    client.log_metric(runs[5], "train_loss", float("nan"), step=1)
    client.set_tag(runs[5], "dropattack.error", "NonFiniteLossError: loss became nan")
    client.set_terminated(runs[5], "FAILED")
    client.log_metric(runs[6], "val_acc", 0.1, step=0)  # an earlier step: not the latest
    client.delete_run(runs[7])
    child(100, 3500, under=runs[0])  # nested under a trial, not under the parent
    child(101, 3500, experiment=other)  # the same parent's tag in another experiment
    child(102, 3600, under=old)
    return {"exp": exp, "other": other, "parent": parent, "old": old}


def _mlflow_reading(uri: str, exp: str, tag: str, value: str, order: str) -> list[dict]:
    """What ``search_runs`` returns for the selection, in small pages."""
    client = MlflowClient(uri)
    runs, token = [], None
    while True:
        page = client.search_runs(
            [exp],
            f"tags.`{tag}` = '{value}'",
            ViewType.ACTIVE_ONLY,
            max_results=3,
            order_by=[f"attributes.start_time {order}", f"attributes.run_id {order}"],
            page_token=token,
        )
        runs += [plain(RunRecord.from_run(r).__dict__) for r in page]
        token = page.token
        if not token:
            return runs


def plain(run: dict[str, Any]) -> dict[str, Any]:
    """NaN as a string, so that equal readings compare equal."""
    metrics = {k: "nan" if math.isnan(v) else v for k, v in run["metrics"].items()}
    return {**run, "metrics": metrics}


def assert_reads_alike(uri: str, ids: dict[str, str]) -> None:
    """Each selection the report makes, read in bulk and through MLflow: the same."""
    selections = [
        (ids["exp"], "dropattack.role", "sweep"),
        (ids["exp"], "mlflow.parentRunId", ids["parent"]),
        (ids["exp"], "mlflow.parentRunId", ids["old"]),
        (ids["other"], "mlflow.parentRunId", ids["parent"]),
        (ids["exp"], "mlflow.parentRunId", "no-such-run"),
    ]
    for exp, tag, value in selections:
        for order in ("ASC", "DESC"):
            expected = _mlflow_reading(uri, exp, tag, value, order)
            got = [plain(r) for r in read_runs(uri, exp, tag, value, order)]
            assert got == expected, (exp, tag, value, order)
    children = read_runs(uri, ids["exp"], "mlflow.parentRunId", ids["parent"], "ASC")
    assert len(children) == 7  # 8 trials, one deleted; not the nested one nor the other's
    assert {r["status"] for r in children} == {"FINISHED", "FAILED", "RUNNING"}
    nan = [r for r in children if r["status"] == "FAILED"][0]["metrics"]["train_loss"]
    assert math.isnan(nan)


def test_bulk_reading_is_mlflows_reading(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = write_store(uri)
    assert_reads_alike(uri, ids)
    sweep = collect(EXPERIMENT, uri)  # the report's reading, in bulk
    assert sweep.parent.run_id == ids["parent"]
    assert [r.run_id for r in sweep.other_parents] == [ids["old"]]
    expected = _mlflow_reading(uri, ids["exp"], "mlflow.parentRunId", ids["parent"], "ASC")
    assert [plain(r.__dict__) for r in sweep.runs] == expected


def test_only_sqlite_and_postgresql_are_read_in_bulk():
    assert bulk_readable("sqlite:////tmp/x/mlflow.db")
    assert bulk_readable("postgresql+psycopg2://u:p@127.0.0.1:5432/mlflow")
    assert bulk_readable("postgresql://db/mlflow")
    for uri in ("http://127.0.0.1:5000", "https://mlflow", "file:///tmp/mlruns", "mlruns"):
        assert not bulk_readable(uri), uri
    assert not bulk_readable("mysql+pymysql://u:p@db/mlflow")  # case-insensitive collation
