"""A real single-node Slurm for the tests: ``munged``, ``slurmctld`` and ``slurmd`` of our own.

Debian's ``slurm-wlm`` and ``munge`` come from :mod:`tests.debian` (installed before the tests,
or by the fixture when missing). Everything lives in a temp folder: a fresh munge key
and socket, a generated ``slurm.conf`` (free ports, state and spool folders, logs). It
declares ``nodes`` Slurm nodes ``n1``, ``n2``, ... on this machine, each its own ``slurmd``
(Debian builds Slurm with multiple-slurmd support) with its share of the CPUs, so that a job
can span nodes and ``srun`` starts a task on each. ``ProctrackType=proctrack/linuxproc``
and ``TaskPlugin=task/none`` need no cgroups or systemd. Slurm's commands find this
cluster through ``SLURM_CONF`` (:attr:`SlurmCluster.env`). Each daemon runs in the
foreground in its own process group and is stopped by that group, never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.debian import ensure
from tests.netutil import free_ports
from tests.procutil import kill_group

__all__ = ["SlurmCluster", "SlurmUnavailable", "start_slurm"]

DAEMONS = ("munged", "slurmctld", "slurmd")
PACKAGES = ("slurm-wlm", "munge")


class SlurmUnavailable(RuntimeError):
    """Slurm cannot run here (not installed and not installable, or a daemon will not start)."""


def _install() -> None:
    why = ensure(*PACKAGES)
    if why:
        raise SlurmUnavailable(why)


class SlurmCluster:
    """One Slurm node (this machine) and its controller, configured in ``root``."""

    def __init__(self, root: Path, nodes: int = 2) -> None:
        self.root = root
        self.host = socket.gethostname()
        self.nodes = [f"n{i + 1}" for i in range(nodes)]
        self.cpus_per_node = max(1, (os.cpu_count() or 1) // nodes)
        self.ctld_port, *self.slurmd_ports = free_ports(1 + nodes)
        # Job ids of this cluster's own (its controller's port, held while it runs, times 100):
        # clusters running at once never share one, and a job's Ray folder, /tmp/da-ray-ID.*,
        # names one job.
        self.first_job_id = self.ctld_port * 100
        self.groups: dict[str, subprocess.Popen] = {}  # daemon name -> its process (group)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment for Slurm's commands (``sbatch``, ``squeue``, ...)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_conf(self) -> None:
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
        mem_mb //= len(self.nodes)
        r = self.root
        nodes = [
            f"NodeName={name} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={port} "
            f"CPUs={self.cpus_per_node} RealMemory={mem_mb} Gres=gpu:1 State=UNKNOWN"
            for name, port in zip(self.nodes, self.slurmd_ports, strict=True)
        ]
        # One GPU per node, its device file /dev/null: Slurm grants it and sets
        # SLURM_GPUS_ON_NODE and CUDA_VISIBLE_DEVICES, so the batch script's GPU path runs;
        # nothing can compute on it. (A count without a file registers as 0 GPUs here.)
        gres = f"NodeName={','.join(self.nodes)} Name=gpu File=/dev/null\n"
        (self.root / "gres.conf").write_text(gres)
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=dropattack-test",
                    "GresTypes=gpu",
                    f"SlurmctldHost={self.host}(127.0.0.1)",
                    f"SlurmctldPort={self.ctld_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={r}/munge/munge.sock",
                    f"StateSaveLocation={r}/state",
                    f"SlurmdSpoolDir={r}/spool/%n",
                    f"SlurmctldPidFile={r}/slurmctld.pid",
                    f"SlurmdPidFile={r}/slurmd-%n.pid",
                    f"SlurmctldLogFile={r}/log/slurmctld.log",
                    f"SlurmdLogFile={r}/log/slurmd-%n.log",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SchedulerType=sched/builtin",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "JobCompType=jobcomp/none",
                    "AccountingStorageType=accounting_storage/none",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "JobRequeue=1",
                    f"FirstJobId={self.first_job_id}",
                    "KillWait=30",
                    "MinJobAge=600",
                    *nodes,
                    f"PartitionName=test Nodes={','.join(self.nodes)} Default=YES "
                    "MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _daemon(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - the child holds it
        with log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        self.groups[name] = proc

    def start(self, timeout: float = 60) -> None:
        r = self.root
        for sub in ("munge", "state", "spool", "log"):
            (r / sub).mkdir(mode=0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._write_conf()
        self._daemon(
            "munged",
            [
                "munged", "--foreground", "--force", f"--socket={r}/munge/munge.sock",
                f"--key-file={key}", f"--pid-file={r}/munge/munged.pid",
                f"--seed-file={r}/munge/seed", f"--log-file={r}/log/munged.log",
            ],
        )  # fmt: skip
        self._wait(lambda: (r / "munge" / "munge.sock").exists(), timeout, "munged")
        self._daemon("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        for name in self.nodes:
            (r / "spool" / name).mkdir(mode=0o700)
            self._daemon(f"slurmd-{name}", ["slurmd", "-D", "-N", name, "-f", str(self.conf)])
        self._wait(self._nodes_idle, timeout, "idle Slurm nodes")

    def _nodes_idle(self) -> bool:
        out = self.run("sinfo", "--noheader", "--Node", "--format=%t", check=False)
        return out.split() == ["idle"] * len(self.nodes)

    def _wait(self, ready, timeout: float, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, proc in self.groups.items() if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise SlurmUnavailable(f"no {what} (dead: {dead}):\n{self.logs()}")
            time.sleep(0.5)

    def logs(self, chars: int = 3000) -> str:
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {f.name}\n{f.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        """A Slurm command against this cluster; its stdout."""
        done = subprocess.run(
            list(cmd), capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields (JobState, Restarts, ...); empty once forgotten."""
        out = self.run("scontrol", "show", "job", "--oneliner", job_id, check=False)
        fields = {}
        for word in out.split():
            key, _, value = word.partition("=")
            fields.setdefault(key, value)
        return fields

    def jobs(self) -> list[str]:
        """Ids of the jobs Slurm knows (pending, running, or ended within MinJobAge)."""
        return self.run("squeue", "--noheader", "--states=all", "--format=%i").split()

    def stop(self) -> None:
        """Cancel every job, then stop the daemons (slurmd first) by process group; whatever
        happens on the way (a failure, a Ctrl-C), every daemon's group ends up killed."""
        order = ("slurmd", "slurmctld", "munged")
        try:
            ctld = self.groups.get("slurmctld")
            if ctld is not None and ctld.poll() is None:
                self.run("scancel", "--full", "--user=root", check=False, timeout=30)
                deadline = time.monotonic() + 40
                while (
                    time.monotonic() < deadline
                    and self.run("squeue", "--noheader", check=False, timeout=30).strip()
                ):
                    time.sleep(1)
            for name in sorted(self.groups, key=lambda n: order.index(n.split("-")[0])):
                kill_group(self.groups[name].pid, grace=10)
        finally:
            for proc in self.groups.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)


def start_slurm() -> SlurmCluster:
    """Install Slurm if needed and start it in a fresh temp folder (removed by :meth:`stop`'s
    caller). Raises :class:`SlurmUnavailable` with the reason when it cannot run here."""
    if os.geteuid() != 0:
        raise SlurmUnavailable("the test Slurm runs its daemons as root; this user is not root")
    _install()
    # Short path under /tmp: munge's socket and Ray's (the jobs') have length limits.
    cluster = SlurmCluster(Path(tempfile.mkdtemp(prefix="da-slurm-", dir="/tmp")))
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
        raise
    return cluster
