"""``dropattack jobs status|logs|stop|list``: follow the Ray Jobs that ``submit`` started."""

from __future__ import annotations

import argparse
import json
import sys
import time

from sweeps.cluster import ray_jobs
from sweeps.commands.argtypes import job_api_address, nonnegative_float

NAME = "jobs"
HELP = "Show the status or logs of Ray Jobs on a cluster, stop one, or list them."


def _address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        type=job_api_address,
        default=None,
        help="Ray job API, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, an http "
        f"$RAY_ADDRESS, else {ray_jobs.DEFAULT_ADDRESS})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("status", help="status, entrypoint and times of one job")
    p.add_argument("job_id", help="the id `dropattack submit` printed")
    p.add_argument("--json", action="store_true", help="one JSON object")
    _address(p)
    p = sub.add_parser("logs", help="what the job printed")
    p.add_argument("job_id", help="the id `dropattack submit` printed")
    p.add_argument(
        "--follow", action="store_true", help="stream until it ends; exit 0 only on success"
    )
    _address(p)
    p = sub.add_parser("stop", help="stop a job and wait until it has ended")
    p.add_argument("job_id", help="the id `dropattack submit` printed")
    p.add_argument(
        "--wait",
        type=nonnegative_float,
        default=60.0,
        metavar="SECONDS",
        help="wait at most this long for it to end; 0: do not wait (default: %(default)s)",
    )
    _address(p)
    p = sub.add_parser("list", help="every job the cluster knows, oldest first")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    _address(p)


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def _describe(state: ray_jobs.JobState) -> str:
    end = state.end_time or (time.time() if state.start_time else None)
    took = f" ({end - state.start_time:.0f}s)" if state.start_time and end else ""
    lines = [
        f"{state.job_id}  {state.status}  started {_when(state.start_time)}"
        f"  ended {_when(state.end_time)}{took}",
        f"  entrypoint: {state.entrypoint}",
    ]
    if state.message:
        lines.append(f"  message: {state.message}")
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    state = ray_jobs.job_status(args.job_id, args.address)
    print(json.dumps(state.as_json()) if args.json else _describe(state))
    return 0


def _logs(args: argparse.Namespace) -> int:
    if not args.follow:
        print(ray_jobs.job_logs(args.job_id, args.address), end="")
        return 0
    state = ray_jobs.follow_logs(args.job_id, lambda s: print(s, end="", flush=True), args.address)
    print(f"{state.job_id} {state.status}: {state.message}", file=sys.stderr)
    return 0 if state.status == "SUCCEEDED" else 1


def _stop(args: argparse.Namespace) -> int:
    state = ray_jobs.stop_job(args.job_id, args.address, timeout=args.wait)
    print(f"{state.job_id} {state.status}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for state in ray_jobs.list_jobs(args.address):
        if args.json:
            print(json.dumps(state.as_json()))
        else:
            print(
                f"{state.job_id}  {state.status:<9}  {_when(state.start_time)}  "
                f"{state.metadata.get('dropattack.spec', '') if state.metadata else ''}"
            )
    return 0


ACTIONS = {"status": _status, "logs": _logs, "stop": _stop, "list": _list}


def run(args: argparse.Namespace) -> int:
    from sweeps.commands import UsageError

    try:
        return ACTIONS[args.action](args)
    except ray_jobs.ClusterError as e:
        raise UsageError(str(e)) from None
