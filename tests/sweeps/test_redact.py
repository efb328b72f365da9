"""sweeps.cluster.redact: the user:password@ part of URIs masked before anything records it."""

from __future__ import annotations

import pytest

from sweeps.cluster.redact import redact_text, redact_uri, uri_credentials


@pytest.mark.parametrize(
    ("uri", "found", "shown"),
    [
        ("http://bob:hunter2@mlflow:5000/x?y=1", "bob:hunter2", "http://***@mlflow:5000/x?y=1"),
        ("postgresql://u:p%40ss@db:5432/mlflow", "u:p%40ss", "postgresql://***@db:5432/mlflow"),
        ("ray://tok@head:10001", "tok", "ray://***@head:10001"),
        ("http://mlflow:5000", None, "http://mlflow:5000"),
        ("sqlite:////data/runs/mlflow.db", None, "sqlite:////data/runs/mlflow.db"),
        ("auto", None, "auto"),
        ("10.0.0.1:8265", None, "10.0.0.1:8265"),
    ],
)
def test_credentials_in_uris(uri: str, found: str | None, shown: str) -> None:
    assert uri_credentials(uri) == found
    assert redact_uri(uri) == shown


def test_redact_text_masks_every_uri_of_a_command_line() -> None:
    line = (
        "dropattack sweep q --mlflow-uri 'http://a:b@h:5000' --address=ray://c:d@e:1 --x http://ok"
    )
    assert redact_text(line) == (
        "dropattack sweep q --mlflow-uri 'http://***@h:5000' --address=ray://***@e:1 --x http://ok"
    )
