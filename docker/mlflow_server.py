"""Entry point of the compose stack's MLflow server: Postgres backend, basic auth, then
``mlflow server`` with the compose command's arguments (artifacts, host, port, app name).

- The backend store URI is built here from ``POSTGRES_*`` with every part URL-encoded, and
  handed over as ``MLFLOW_BACKEND_STORE_URI`` (which ``mlflow server`` reads), so the
  password is never on a command line. ``MLFLOW_BACKEND_STORE_URI`` set beforehand wins.
- ``--app-name basic-auth`` reads an ini file: it is written to a fresh private folder
  (mode 0700, file 0600) and named by ``MLFLOW_AUTH_CONFIG_PATH``. Users live in the same
  database (``MLFLOW_AUTH_DATABASE_URI`` overrides); the admin account comes from
  ``MLFLOW_AUTH_ADMIN_USERNAME`` / ``MLFLOW_AUTH_ADMIN_PASSWORD`` and is created on the
  first start only: changing the password later goes through MLflow's user API.
- A secret that still holds the ``.env.example`` placeholder stops the start.
"""

from __future__ import annotations

import configparser
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

PLACEHOLDER = "changeme"
REQUIRED = (
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
SECRETS = (
    "POSTGRES_PASSWORD",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "AWS_SECRET_ACCESS_KEY",
)
AUTH_FUNCTION = "mlflow.server.auth:authenticate_request_basic_auth"


class ConfigError(ValueError):
    """A missing or placeholder setting; the message names the variable."""


def _need(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set (docker-compose.yml takes it from .env)")
    return value


def backend_uri(env: Mapping[str, str]) -> str:
    """``MLFLOW_BACKEND_STORE_URI`` if set, else Postgres from ``POSTGRES_*``."""
    if env.get("MLFLOW_BACKEND_STORE_URI"):
        return env["MLFLOW_BACKEND_STORE_URI"]
    user = quote(_need(env, "POSTGRES_USER"), safe="")
    password = quote(_need(env, "POSTGRES_PASSWORD"), safe="")
    database = quote(_need(env, "POSTGRES_DB"), safe="")
    host = env.get("POSTGRES_HOST", "postgres")
    port = env.get("POSTGRES_PORT", "5432")
    return f"postgresql+psycopg2://{user}:{password}@{host}:{port}/{database}"


def auth_config(env: Mapping[str, str], database_uri: str) -> configparser.ConfigParser:
    """The ``basic_auth.ini`` contents (``%`` doubled: configparser interpolates it)."""
    values = {
        "default_permission": env.get("MLFLOW_AUTH_DEFAULT_PERMISSION", "READ"),
        "database_uri": env.get("MLFLOW_AUTH_DATABASE_URI") or database_uri,
        "admin_username": _need(env, "MLFLOW_AUTH_ADMIN_USERNAME"),
        "admin_password": _need(env, "MLFLOW_AUTH_ADMIN_PASSWORD"),
        "authorization_function": AUTH_FUNCTION,
    }
    config = configparser.ConfigParser()
    config["mlflow"] = {k: v.replace("%", "%%") for k, v in values.items()}
    return config


def prepare(env: dict[str, str]) -> dict[str, str]:
    """Check ``env``, write the auth ini; returns the environment for ``mlflow server``.

    Raises:
        ConfigError: a required variable is missing or a secret is still a placeholder.
    """
    for name in REQUIRED:
        _need(env, name)
    for name in SECRETS:
        if env.get(name, "").startswith(PLACEHOLDER):
            raise ConfigError(f"{name} still has the .env.example placeholder; set it in .env")
    out = dict(env)
    out["MLFLOW_BACKEND_STORE_URI"] = backend_uri(env)
    folder = Path(tempfile.mkdtemp(prefix="mlflow-auth-"))
    path = folder / "basic_auth.ini"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        auth_config(env, out["MLFLOW_BACKEND_STORE_URI"]).write(f)
    out["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
    return out


def main(argv: Sequence[str]) -> int:
    try:
        env = prepare(dict(os.environ))
    except ConfigError as e:
        print(f"mlflow-server: {e}", file=sys.stderr)
        return 2
    os.execvpe("mlflow", ["mlflow", "server", *argv], env)
    return 1  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
