"""Forward this machine's MLflow login to a Ray job without writing it in clear.

A Ray job's runtime env is kept in the job record (which the dashboard and job API show)
and written to node logs ("Creating runtime env: ..."), so a password put there is readable
by anyone who sees either. By default nothing is forwarded: the cluster's nodes log in with
their own non-admin account (``MLFLOW_SWEEP_USERNAME`` in the compose stack). With
``dropattack submit --forward-mlflow-credentials`` the local ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` travel sealed in one variable, :data:`SEALED_ENV`: Fernet
(AES-128-CBC with HMAC-SHA256) under a key derived by HKDF-SHA256 from the cluster's Ray
token, which every node holds and the job record does not. The job's processes unseal it
when they first open MLflow, into memory only (:mod:`sweeps.records.mlflow_login`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

__all__ = [
    "FORWARDABLE",
    "SEALED_ENV",
    "TOKEN_ENV",
    "TOKEN_PATH_ENV",
    "CredentialError",
    "ray_token",
    "seal",
    "unseal",
    "unseal_environ",
]

SEALED_ENV = "DROPATTACK_SEALED_CREDENTIALS"
#: The only variables a sealed bundle may set.
FORWARDABLE = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
_INFO = b"dropattack: MLflow credentials forwarded to a Ray job, v1"


class CredentialError(ValueError):
    """A sealed bundle that cannot be opened, or no Ray token to seal one with."""


def ray_token(environ: Mapping[str, str] | None = None) -> str:
    """The Ray token: ``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH``, else "".

    Raises:
        CredentialError: ``RAY_AUTH_TOKEN_PATH`` names a file that cannot be read or is empty.
    """
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    path = env.get(TOKEN_PATH_ENV, "").strip()
    if not token and path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as e:
            raise CredentialError(f"{TOKEN_PATH_ENV}={path}: cannot read: {e.strerror}") from None
        if not token:
            raise CredentialError(f"{TOKEN_PATH_ENV}={path}: the file is empty")
    return token


def _fernet(token: str):
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(token.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(values: Mapping[str, str], token: str) -> str:
    """``values`` (names from :data:`FORWARDABLE`) sealed under ``token``.

    Raises:
        CredentialError: no token, or a name that may not be forwarded.
    """
    if not token:
        raise CredentialError(
            f"forwarding MLflow credentials needs the cluster's Ray token in {TOKEN_ENV}"
        )
    unknown = sorted(set(values) - set(FORWARDABLE))
    if unknown:
        raise CredentialError(f"cannot forward {', '.join(unknown)}; only {FORWARDABLE}")
    return _fernet(token).encrypt(json.dumps(dict(values)).encode()).decode("ascii")


def unseal(blob: str, token: str) -> dict[str, str]:
    """The values :func:`seal` sealed.

    Raises:
        CredentialError: wrong token, or a bundle that was altered or is not one.
    """
    from cryptography.fernet import InvalidToken

    try:
        values = json.loads(_fernet(token).decrypt(blob.encode("ascii")))
    except (InvalidToken, ValueError, UnicodeError):
        raise CredentialError(
            f"{SEALED_ENV}: cannot unseal it with this node's {TOKEN_ENV} (another cluster's "
            "token, or the value was altered)"
        ) from None
    if not isinstance(values, dict) or set(values) - set(FORWARDABLE):
        raise CredentialError(f"{SEALED_ENV}: holds more than {', '.join(FORWARDABLE)}")
    return {str(k): str(v) for k, v in values.items()}


def unseal_environ(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Open :data:`SEALED_ENV`, when set, into ``environ`` (default ``os.environ``);
    returns the names it set. The forwarded login replaces the node's own.

    Raises:
        CredentialError: the bundle cannot be opened with this node's token.
    """
    env = os.environ if environ is None else environ
    blob = env.get(SEALED_ENV)
    if not blob:
        return []
    values = unseal(blob, ray_token(env))
    env.update(values)
    return sorted(values)
