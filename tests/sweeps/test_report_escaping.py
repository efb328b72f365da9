"""The report treats what MLflow holds as text: markup in a run param or an error tag shows
as characters in report.md and report.html, never as an image, a link or a script.

A real sqlite MLflow store, runs written as trials write them; report.md is rendered by a
real CommonMark parser with raw HTML on (markdown-it-py, as many Markdown viewers are).
"""

from __future__ import annotations

import html
import re
import time

from markdown_it import MarkdownIt
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from sweeps.report import build_report

IMG = "<img src=x onerror=alert(1)>"
LINK = "[a](javascript:alert(2))"
ERROR_IMG = "<img src=y onerror=alert(3)>"
ERROR_LINK = "[b](javascript:alert(4))"


def _store(root) -> str:
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("escaping", artifact_location=(root / "art").as_uri())
    now = int(time.time() * 1000)
    parent = client.create_run(
        exp, start_time=now, run_name="escaping", tags={"dropattack.role": "sweep"}
    ).info.run_id
    for attack, accs in ((IMG, (0.80, 0.82)), (LINK, (0.70, 0.71))):
        for seed, acc in enumerate(accs):
            run = client.create_run(
                exp,
                start_time=now,
                tags={
                    "mlflow.parentRunId": parent,
                    "dropattack.role": "trial",
                    "dropattack.cell": f"task=digits-lenet5;method=dropattack;attack={attack}",
                },
            ).info.run_id
            params = {"task": "digits-lenet5", "method": "dropattack", "attack": attack}
            params["seed"] = str(seed)
            metrics = [Metric(k, acc, now, 0) for k in ("val_acc", "test_acc", "seconds")]
            client.log_batch(run, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
            client.set_terminated(run, "FINISHED")
    failed = client.create_run(
        exp,
        start_time=now,
        tags={
            "mlflow.parentRunId": parent,
            "dropattack.role": "trial",
            "dropattack.cell": f"task=digits-lenet5;method=dropattack;attack={ERROR_LINK}",
        },
    ).info.run_id
    client.log_batch(
        failed,
        params=[Param("task", "digits-lenet5"), Param("method", "dropattack")],
        tags=[RunTag("dropattack.error", f"ValueError: {ERROR_IMG} {ERROR_LINK}")],
    )
    client.set_terminated(failed, "FAILED")
    client.set_terminated(parent, "FINISHED")
    return uri


def _live_markup(page: str) -> list[str]:
    """Image tags with handlers and javascript: links that a browser would act on."""
    return re.findall(r"<img[^>]*onerror|href=[\'\"]?javascript:", page)


def test_markup_from_mlflow_is_shown_as_text(tmp_path) -> None:
    uri = _store(tmp_path)
    out = tmp_path / "out"
    report = build_report(
        "escaping", tracking_uri=uri, out_dir=out, formats="md,html", log_artifacts=False
    )
    md = report.files["md"].read_text()
    page = report.files["html"].read_text()
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert _live_markup(page) == [] and _live_markup(rendered) == []
    assert "<a " not in rendered  # no link at all: LINK and ERROR_LINK are text
    for payload in (IMG, LINK, ERROR_IMG, ERROR_LINK):
        assert payload not in md, payload  # not even as raw text for another viewer
        shown = html.escape(payload, quote=False)
        assert shown in page, payload  # every character still there, as text
        assert shown in rendered.replace("&quot;", '"'), payload
