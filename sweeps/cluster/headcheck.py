"""Check a Ray head before a sweep trusts it: Ray new enough, and its token really required.

Ray enforces ``RAY_AUTH_MODE=token`` only from :data:`MIN_RAY`; an older Ray ignores the
setting and opens its GCS, which runs anyone's code, to every host that reaches the port.
The Slurm batch script runs ``python3 -m sweeps.cluster.headcheck version`` on every node
before it starts Ray there, and ``python3 -m sweeps.cluster.headcheck auth HOST:PORT`` once
the head is up, before any trial starts: a GCS request without the token must be refused,
and one with it answered. Exit status 0 when the check holds, 2 (one line on stderr) when not.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

__all__ = ["MIN_RAY", "HeadCheckError", "check_auth", "check_version", "main", "parse_address"]

#: The first Ray that enforces token authentication.
MIN_RAY = (2, 52)
_ADDRESS = re.compile(r"^([A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$")


class HeadCheckError(RuntimeError):
    """The node's Ray is too old, or the head answers without the token."""


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` as a pair; anything else (spaces, ``;``, a scheme, a bad port) refused."""
    m = _ADDRESS.match(address)
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise HeadCheckError(f"Ray head address {address!r}: expected HOST:PORT")
    return m.group(1), int(m.group(2))


def check_version(version: str | None = None) -> str:
    """Raise unless ``version`` (default: this Python's Ray) is at least :data:`MIN_RAY`."""
    if version is None:
        import ray

        version = ray.__version__
    parts = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    if parts < MIN_RAY:
        need = ".".join(map(str, MIN_RAY))
        raise HeadCheckError(
            f"Ray {version} on this node ignores RAY_AUTH_MODE=token; install ray>={need}"
        )
    return version


def _cluster_id(address: str, metadata: Sequence[tuple[str, str]], timeout: float) -> None:
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        stub.GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(), metadata=list(metadata), timeout=timeout
        )


def check_auth(address: str, token: str, timeout: float = 10.0) -> None:
    """Raise unless the GCS at ``address`` refuses a request without ``token`` and answers
    one with it."""
    import grpc

    parse_address(address)
    if not token:
        raise HeadCheckError("RAY_AUTH_TOKEN is empty: the head cannot be checked")
    try:
        _cluster_id(address, [("authorization", f"Bearer {token}")], timeout)
    except grpc.RpcError as e:
        raise HeadCheckError(
            f"the Ray head at {address} does not answer with the job's token ({e.code().name})"
        ) from None
    try:
        _cluster_id(address, [], timeout)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAUTHENTICATED:
            return
        raise HeadCheckError(
            f"the Ray head at {address}: a request without the token failed with "
            f"{e.code().name}, not UNAUTHENTICATED"
        ) from None
    raise HeadCheckError(
        f"the Ray head at {address} answers without the token: authentication is off "
        "(Ray < 2.52, or RAY_AUTH_MODE not set on the node)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``version`` or ``auth HOST:PORT`` (the token from ``$RAY_AUTH_TOKEN``)."""
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["version"]:
            check_version()
        elif len(args) == 2 and args[0] == "auth":
            check_auth(args[1], os.environ.get("RAY_AUTH_TOKEN", ""))
        else:
            raise HeadCheckError("usage: python -m sweeps.cluster.headcheck version|auth HOST:PORT")
    except HeadCheckError as e:
        print(f"dropattack-slurm: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
