"""``dropattack submit SPEC``: send a sweep to a Ray cluster as a Ray Job, or to Slurm.

The job runs ``dropattack sweep SPEC --address auto`` on the cluster's head node with the
project folder as its working directory; stdout gets the job id alone (for scripts), the
follow-up commands go to stderr. ``--follow`` streams the job's output until it ends.
With ``--slurm`` the batch script of :mod:`sweeps.cluster.slurm` goes to ``sbatch`` instead (options
after ``--`` are sbatch's), once the spec and the MLflow server have been checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweeps.cluster import ray_jobs, slurm
from sweeps.commands.argtypes import (
    existing_dir,
    existing_file,
    experiment_name,
    gpu_share_or_auto,
    job_api_address,
    output_dir,
    positive_int,
    tracking_uri,
)

NAME = "submit"
PASSTHROUGH = True  # with --slurm, the words after -- are sbatch options
HELP = (
    "Send a sweep spec to a Ray cluster as a Ray Job (its driver runs on the head node) "
    "and print the job id."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="spec name (sweeps/specs/NAME.yaml) or a YAML file")
    parser.add_argument(
        "--address",
        type=job_api_address,
        default=None,
        help="Ray job API, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, an http "
        f"$RAY_ADDRESS, else {ray_jobs.DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--mlflow-uri",
        type=tracking_uri,
        default=None,
        help="MLflow tracking server as the cluster's nodes reach it (default: "
        f"{ray_jobs.CLUSTER_MLFLOW_URI}, the compose stack's; with --slurm: "
        "$MLFLOW_TRACKING_URI, else sqlite in --runs-dir)",
    )
    parser.add_argument(
        "--experiment",
        type=experiment_name,
        help="MLflow experiment and sweep name (default: spec)",
    )
    parser.add_argument("--resume", action="store_true", help="continue a sweep of this name")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data root as the cluster's nodes see it (the layout `dropattack data fetch` "
        "writes); it wins over the spec's data_dir, which wins over $DROPATTACK_DATA. With "
        "--slurm it is checked here, on storage the login node shares, before queueing",
    )
    parser.add_argument("--max-concurrent", type=positive_int, help="at most N trials at once")
    parser.add_argument(
        "--gpus-per-trial",
        type=gpu_share_or_auto,
        help="GPUs per trial, fractions share a GPU; auto measures it on the cluster",
    )
    parser.add_argument(
        "--runs-dir",
        help=f"sweep state folder on the cluster, seen by every node (default: "
        f"${ray_jobs.RUNS_DIR_ENV} on the head, else runs in the job's folder; with --slurm: "
        f"${ray_jobs.RUNS_DIR_ENV} here, else ./runs)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="the job only prints the resolved trials"
    )
    parser.add_argument(
        "--working-dir",
        type=existing_dir,
        help="folder shipped as the job's working directory (default: this project)",
    )
    parser.add_argument(
        "--pip",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="extra pip requirement installed for the job (repeatable)",
    )
    parser.add_argument(
        "--requirements",
        type=existing_file,
        metavar="FILE",
        help="requirements file of extra pip packages",
    )
    parser.add_argument(
        "--forward-mlflow-credentials",
        action="store_true",
        help="log as this machine's MLFLOW_TRACKING_USERNAME/PASSWORD, sent sealed under the "
        "Ray token (default: the nodes' own MLflow account)",
    )
    parser.add_argument(
        "--slurm",
        action="store_true",
        help="submit to Slurm with sbatch instead: Ray over the allocation, a graceful stop "
        "before the time limit and a requeue that resumes the sweep (docs/cluster.md); "
        "sbatch options go after --, e.g. -- --time=8:00:00 --gres=gpu:2",
    )
    parser.add_argument(
        "--script",
        type=existing_file,
        metavar="FILE",
        help="with --slurm: your edited copy of the batch script (default: sweeps/slurm.sbatch)",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="stream the job's output until it ends; exit 0 only if it succeeded",
    )


def run(args: argparse.Namespace) -> int:
    from sweeps.commands import UsageError

    if args.slurm:
        return _run_slurm(args)
    if args.passthrough or args.script:
        raise UsageError("--script and sbatch options (after --) need --slurm")
    pip = list(args.pip)
    if args.requirements:
        pip += ray_jobs.read_requirements(args.requirements)
    sweep = ray_jobs.SweepArgs(
        experiment=args.experiment,
        resume=args.resume,
        max_concurrent=args.max_concurrent,
        gpus_per_trial=args.gpus_per_trial,
        runs_dir=args.runs_dir,
        dry_run=args.dry_run,
        data_dir=args.data_dir,
    )
    address = ray_jobs.normalize_address(args.address)
    folder = args.working_dir or ray_jobs.project_root()
    for _, link in ray_jobs.local_excludes(Path(folder).expanduser()):
        print(f"not shipped: {link} (a link out of {folder})", file=sys.stderr)
    try:
        job_id = ray_jobs.submit(
            args.spec,
            address=address,
            mlflow_uri=args.mlflow_uri or ray_jobs.CLUSTER_MLFLOW_URI,
            working_dir=args.working_dir,
            pip=pip,
            sweep=sweep,
            forward_credentials=args.forward_mlflow_credentials,
        )
        print(job_id, flush=True)
        if not args.follow:
            print(
                f"follow it: dropattack jobs logs {job_id} --follow --address {address}\n"
                f"stop it:   dropattack jobs stop {job_id} --address {address}",
                file=sys.stderr,
            )
            return 0
        state = ray_jobs.follow_logs(job_id, lambda s: print(s, end="", flush=True), address)
    except ray_jobs.ClusterError as e:
        raise UsageError(str(e)) from None
    print(f"{state.job_id} {state.status}: {state.message}", file=sys.stderr)
    return 0 if state.status == "SUCCEEDED" else 1


def _run_slurm(args: argparse.Namespace) -> int:
    """Check the spec and the MLflow server, then sbatch the batch script."""
    from sweeps.commands import UsageError
    from sweeps.execution.state import SweepError, check_state
    from sweeps.records.store import UnreachableError
    from sweeps.specs.data import absolute, data_problems, first_problem
    from sweeps.specs.load import load_spec

    for flag in ("address", "working_dir", "requirements", "follow", "forward_mlflow_credentials"):
        if getattr(args, flag):
            raise UsageError(f"--{flag.replace('_', '-')} is for Ray jobs, not --slurm")
    if args.pip:
        raise UsageError("--pip is for Ray jobs, not --slurm")
    data_dir = absolute(args.data_dir)
    if data_dir and any(c.isspace() for c in data_dir):
        raise UsageError(
            f"--data-dir: {data_dir!r} has white space, which the batch script's flags "
            "cannot carry; use a path without it (a symlink)"
        )
    spec = load_spec(args.spec, data_dir)  # a spec that does not validate stops here, one line
    # the job reads this storage too: data it would miss is refused now, not after it waited
    # in the queue for its allocation
    problems = data_problems(spec)
    if problems:
        raise UsageError(f"not queued: {first_problem(problems)}")
    idle = slurm.idle_gpus_problem(spec, args.gpus_per_trial, args.passthrough)
    if idle:
        raise UsageError(idle)
    if args.runs_dir is not None:  # on storage this login node shares with the cluster
        try:
            output_dir(args.runs_dir)
        except argparse.ArgumentTypeError as e:
            raise UsageError(f"--runs-dir: {e}") from None
    sweep_args = []
    if args.max_concurrent:
        sweep_args += ["--max-concurrent", str(args.max_concurrent)]
    if args.gpus_per_trial is not None:
        sweep_args += ["--gpus-per-trial", str(args.gpus_per_trial)]
    if data_dir:
        sweep_args += ["--data-dir", data_dir]
    if args.dry_run:
        sweep_args.append("--dry-run")
    sweep = slurm.resolve(
        spec,
        args.spec,
        experiment=args.experiment,
        runs_dir=args.runs_dir,
        mlflow_uri=args.mlflow_uri,
        resume=args.resume,
        sweep_args=sweep_args,
    )
    try:
        # on the cluster's shared storage: another spec under this name is refused now, not
        # after the job waited in the queue for its allocation
        check_state(
            spec,
            sweep.runs_dir,
            experiment=sweep.experiment,
            resume=args.resume,
            mlflow_uri=args.mlflow_uri,
        )
        job_id = slurm.submit(sweep, script=args.script, sbatch_args=args.passthrough)
    except (UnreachableError, SweepError, slurm.SlurmError) as e:
        raise UsageError(str(e)) from None
    print(job_id, flush=True)
    print(
        f"sweep {sweep.experiment!r}: state in {sweep.runs_dir}, MLflow at {sweep.mlflow_uri}\n"
        f"follow it: squeue -j {job_id}; its log is the script's --output file "
        f"(default dropattack-{job_id}.out here)\n"
        f"stop it:   scancel {job_id} (the sweep saves its state; continue with "
        f"dropattack submit {args.spec} --slurm --resume)",
        file=sys.stderr,
    )
    return 0
