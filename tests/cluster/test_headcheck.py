"""The Slurm job's checks of its Ray head (:mod:`sweeps.cluster.headcheck`).

A head that answers without the token is a real gRPC server serving Ray's own GCS node-info
service with no authentication, as a Ray older than 2.52 (or one started without
``RAY_AUTH_MODE=token``) does; the check must refuse it. The other side, a head with token
authentication that the check accepts, is the Slurm job's own (tests/cluster/test_slurm.py).
"""

from __future__ import annotations

import subprocess
import sys
from concurrent import futures

import grpc
import pytest
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

from sweeps.cluster.headcheck import HeadCheckError, check_auth, check_version, parse_address


class _OpenGcs(gcs_service_pb2_grpc.NodeInfoGcsServiceServicer):
    def GetClusterId(self, request, context):  # noqa: N802, ANN001, ANN201 - gRPC's names
        return gcs_service_pb2.GetClusterIdReply()


@pytest.fixture
def open_head():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    gcs_service_pb2_grpc.add_NodeInfoGcsServiceServicer_to_server(_OpenGcs(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def test_a_head_that_answers_without_the_token_is_refused(open_head):
    with pytest.raises(HeadCheckError, match="answers without the token: authentication is off"):
        check_auth(open_head, "the-job-token")


def test_the_command_exits_2_with_one_line(open_head):
    done = subprocess.run(
        [sys.executable, "-m", "sweeps.cluster.headcheck", "auth", open_head],
        env={"RAY_AUTH_TOKEN": "t", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "authentication is off" in lines[0], done.stderr


@pytest.mark.parametrize(
    "address", ["h:1; touch x", "h:1 x", "$(id):1", "ray://h:1", "h", "h:0", "h:70000", ":1"]
)
def test_only_host_port_is_an_address(address):
    with pytest.raises(HeadCheckError, match="expected HOST:PORT"):
        parse_address(address)
    with pytest.raises(HeadCheckError, match="expected HOST:PORT"):
        check_auth(address, "t")


def test_ray_older_than_2_52_is_refused():
    for old in ("2.51.1", "2.9.3", "1.13.0"):
        with pytest.raises(HeadCheckError, match=f"Ray {old} .* install ray>=2.52"):
            check_version(old)
    assert check_version("2.52.0") == "2.52.0"
    assert check_version("3.0.0") == "3.0.0"
    check_version()  # this environment's Ray
