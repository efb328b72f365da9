"""Read a sweep's runs in bulk straight from a database-backed MLflow store (read-only SQL).

MLflow's ``search_runs`` on a sqlite or PostgreSQL store builds about 30 ORM objects a run
(the run, each tag, param and latest metric): 10,000 runs take tens of seconds. The report
needs only each run's id, status, times, params, tags and latest metrics, so for those two
stores it reads them with four plain queries on the tables MLflow's schema documents
(``runs``, ``tags``, ``params``, ``latest_metrics``), selecting what ``search_runs`` selects:
the active runs of one experiment that carry one tag value, in the same order. Any other
store (an ``http(s)://`` server, a file store, MySQL, ...) is read through MLflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["BULK_SCHEMES", "bulk_readable", "read_runs"]

#: URI schemes (before any ``+driver``) read by :func:`read_runs`.
BULK_SCHEMES = frozenset({"sqlite", "postgresql"})

_SELECTED = """
    SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid
    WHERE r.experiment_id = :exp AND r.lifecycle_stage = 'active'
      AND t.key = :key AND t.value = :value
"""
_RUNS = """
    SELECT r.run_uuid, r.status, r.start_time, r.end_time
    FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid
    WHERE r.experiment_id = :exp AND r.lifecycle_stage = 'active'
      AND t.key = :key AND t.value = :value
    ORDER BY CASE WHEN r.start_time IS NULL THEN 1 ELSE 0 END,
             r.start_time {order}, r.run_uuid {order}
"""
_PARTS = {
    "tags": f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({_SELECTED})",
    "params": f"SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({_SELECTED})",
    "metrics": (
        f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({_SELECTED})"
    ),
}
_ENGINES: dict[str, Any] = {}


def bulk_readable(uri: str) -> bool:
    """Whether ``uri`` is a store :func:`read_runs` reads (sqlite or PostgreSQL)."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    return ":" in uri and scheme in BULK_SCHEMES


@contextmanager
def _connection(uri: str) -> Iterator[Any]:
    import sqlalchemy

    engine = _ENGINES.get(uri)
    if engine is None:
        engine = _ENGINES[uri] = sqlalchemy.create_engine(uri)
    with engine.connect() as conn, conn.begin():
        yield conn


def read_runs(
    uri: str, experiment_id: str, tag: str, value: str, order: str = "DESC"
) -> list[dict[str, Any]]:
    """The active runs of ``experiment_id`` tagged ``tag = value`` as MLflow's
    ``search_runs`` returns them ordered by start time then run id (``order``, missing start
    times last): dicts of ``run_id``, ``status``, ``start_time``, ``end_time``, ``params``,
    ``tags`` and ``metrics`` (each run's latest value of each metric; NaN where NaN was
    logged). In one transaction, so one consistent reading."""
    import sqlalchemy

    if order not in ("ASC", "DESC"):
        raise ValueError(f"order: ASC or DESC, got {order!r}")
    bind = {"exp": int(experiment_id), "key": tag, "value": value}
    with _connection(uri) as conn:
        runs: dict[str, dict[str, Any]] = {}
        for run_id, status, start, end in conn.execute(
            sqlalchemy.text(_RUNS.format(order=order)), bind
        ):
            runs[run_id] = {
                "run_id": run_id,
                "status": status,
                "start_time": start,
                "end_time": end,
                "params": {},
                "tags": {},
                "metrics": {},
            }
        for part in ("tags", "params"):
            for run_id, key, val in conn.execute(sqlalchemy.text(_PARTS[part]), bind):
                if run_id in runs:
                    runs[run_id][part][key] = val
        for run_id, key, val, is_nan in conn.execute(sqlalchemy.text(_PARTS["metrics"]), bind):
            if run_id in runs:
                runs[run_id]["metrics"][key] = float("nan") if is_nan else val
    return list(runs.values())
