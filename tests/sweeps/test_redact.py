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


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://h/db?password=hunter2", "postgresql://h/db?password=***"),
        (
            "postgresql://h/db?user=u&sslpassword=s3&sslmode=require",
            "postgresql://h/db?user=u&sslpassword=***&sslmode=require",
        ),
        ("https://h/x.whl?token=abc123&v=1", "https://h/x.whl?token=***&v=1"),
        (
            "https://h/f?X-Amz-Signature=d34d&X-Amz-Credential=AK",
            "https://h/f?X-Amz-Signature=***&X-Amz-Credential=***",
        ),
        ("https://h/simple?access_token=t0k#frag", "https://h/simple?access_token=***#frag"),
        ("postgresql://u:pa/ss@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        ("http://bob:a/b/c@mlflow:5000/x", "http://***@mlflow:5000/x"),
    ],
)
def test_credentials_in_queries_and_passwords_with_a_slash(uri: str, shown: str) -> None:
    assert uri_credentials(uri) is not None
    assert redact_uri(uri) == shown
    assert redact_text(f"x --uri {uri} y") == f"x --uri {shown} y"


@pytest.mark.parametrize(
    "uri", ["s3://bucket/user@2x.png", "https://h/simple?page=2&q=keyboard", "http://h/a?sort=asc"]
)
def test_plain_paths_and_queries_are_not_credentials(uri: str) -> None:
    assert uri_credentials(uri) is None
    assert redact_uri(uri) == uri
