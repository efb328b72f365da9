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
- The sweep account (``MLFLOW_SWEEP_USERNAME`` / ``MLFLOW_SWEEP_PASSWORD``), which the Ray
  nodes log in with, is a plain user: it creates the experiments of its sweeps (and so
  manages them), reads the others and cannot touch users. It is created, or its password
  and non-admin role set again, on every start, so rotating it in .env takes effect.
- A secret that is missing, still the ``.env.example`` placeholder or too short stops the
  start (docker/preflight.py's rules).
"""

from __future__ import annotations

import configparser
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import preflight  # noqa: E402 - docker/preflight.py, beside this file

REQUIRED = (
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
#: The secrets this server holds: its variable -> the .env variable it comes from.
SECRETS = {
    "POSTGRES_PASSWORD": "POSTGRES_PASSWORD",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "AWS_SECRET_ACCESS_KEY": "MLFLOW_S3_SECRET_KEY",
    "MLFLOW_SWEEP_PASSWORD": "MLFLOW_SWEEP_PASSWORD",
}
SWEEP_USER = ("MLFLOW_SWEEP_USERNAME", "MLFLOW_SWEEP_PASSWORD")
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
        ConfigError: a required variable is missing, or a secret is a placeholder or too
            short (named as in .env).
    """
    for name in REQUIRED:
        _need(env, name)
    if bool(env.get(SWEEP_USER[0])) != bool(env.get(SWEEP_USER[1])):
        raise ConfigError(f"set both {' and '.join(SWEEP_USER)}, or neither")
    held = {dotenv: env[name] for name, dotenv in SECRETS.items() if env.get(name)}
    found = preflight.problems(held, held)
    if found:
        raise ConfigError("; ".join(found))
    out = dict(env)
    out["MLFLOW_BACKEND_STORE_URI"] = backend_uri(env)
    folder = Path(tempfile.mkdtemp(prefix="mlflow-auth-"))
    path = folder / "basic_auth.ini"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        auth_config(env, out["MLFLOW_BACKEND_STORE_URI"]).write(f)
    out["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
    return out


def ensure_sweep_user(env: Mapping[str, str]) -> str | None:
    """Create the non-admin sweep account in the auth database, or set its password and
    non-admin role again; returns its name (``None`` when the pair is not set)."""
    username, password = (env.get(name, "") for name in SWEEP_USER)
    if not username:
        return None
    if username == env.get("MLFLOW_AUTH_ADMIN_USERNAME"):
        raise ConfigError(f"{SWEEP_USER[0]} must differ from the admin account ({username})")
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.config import read_auth_config
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(read_auth_config().database_uri)  # reads MLFLOW_AUTH_CONFIG_PATH
    try:
        if store.has_user(username):
            store.update_user(username, password=password, is_admin=False)
        else:
            store.create_user(username, password, is_admin=False)
    except MlflowException as e:
        raise ConfigError(f"{SWEEP_USER[0]}={username}: {e.message}") from None
    return username


def main(argv: Sequence[str]) -> int:
    try:
        env = prepare(dict(os.environ))
        os.environ["MLFLOW_AUTH_CONFIG_PATH"] = env["MLFLOW_AUTH_CONFIG_PATH"]
        ensure_sweep_user(env)
    except ConfigError as e:
        print(f"mlflow-server: {e}", file=sys.stderr)
        return 2
    os.execvpe("mlflow", ["mlflow", "server", *argv], env)
    return 1  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
