"""Refuse to start the compose stack with a weak or example secret.

Run first by docker-compose.yml (the one-shot ``preflight`` service every other service
waits for) and again by the entry points that hold secrets (docker/mlflow_server.py), so a
stack never comes up with a value copied from ``.env.example``. Each secret of
``.env.example`` is checked for the ``changeme`` placeholder and a minimum length: 32
characters for tokens and keys, 16 for passwords. ``python3 -c "import secrets;
print(secrets.token_urlsafe(32))"`` makes a good one. Standard library only.

    python docker/preflight.py            # checks this environment; exit 2 with the reasons
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

PLACEHOLDER = "changeme"
TOKEN_LENGTH = 32
PASSWORD_LENGTH = 16
#: Every secret of .env.example, with its minimum length and what it opens.
SECRETS: dict[str, tuple[int, str]] = {
    "POSTGRES_PASSWORD": (PASSWORD_LENGTH, "MLflow's database: every run and user"),
    "MINIO_ROOT_PASSWORD": (PASSWORD_LENGTH, "MinIO's root account: every bucket"),
    "MLFLOW_S3_SECRET_KEY": (TOKEN_LENGTH, "the artifact bucket"),
    "MLFLOW_ADMIN_PASSWORD": (PASSWORD_LENGTH, "MLflow's admin account: users, every run"),
    "MLFLOW_SWEEP_PASSWORD": (PASSWORD_LENGTH, "MLflow as the Ray nodes' account"),
    "MLFLOW_FLASK_SERVER_SECRET_KEY": (TOKEN_LENGTH, "MLflow's session signatures"),
    "RAY_AUTH_TOKEN": (TOKEN_LENGTH, "the Ray job API and client: code execution"),
}


def problems(env: Mapping[str, str], names: Iterable[str] = SECRETS) -> list[str]:
    """One line per secret in ``names`` that is missing, a placeholder or too short."""
    out = []
    for name in names:
        minimum, opens = SECRETS[name]
        value = env.get(name, "")
        if not value:
            out.append(f"{name} is not set (docker-compose.yml takes it from .env)")
        elif PLACEHOLDER in value.lower():
            out.append(f"{name} still has the .env.example placeholder; set it in .env")
        elif len(value) < minimum:
            out.append(
                f"{name} has {len(value)} characters, at least {minimum} are needed (it opens "
                f"{opens})"
            )
    return out


def main(argv: list[str]) -> int:
    names = argv or list(SECRETS)
    unknown = [n for n in names if n not in SECRETS]
    if unknown:
        print(f"preflight: unknown secret {', '.join(unknown)}", file=sys.stderr)
        return 2
    found = problems(os.environ, names)
    for line in found:
        print(f"preflight: {line}", file=sys.stderr)
    if found:
        print("preflight: the stack was not started; fix .env and run again", file=sys.stderr)
        return 2
    print(f"preflight: {len(names)} secrets set, none from .env.example")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
