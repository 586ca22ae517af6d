"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd on 127.0.0.1 in a temporary folder.

``slurm_cluster`` (session-scoped) starts the three daemons in the foreground as children of the test
process, points ``SLURM_CONF`` at their configuration (sbatch, squeue, sacct, scancel and submitit read
it; jobs inherit it), waits until the node accepts work, and stops every daemon it started afterwards.
Tests that need it are skipped where the daemons are not installed (``.ci/run`` installs them) or the
tests do not run as root (the configuration runs every daemon as root).
Register it with ``pytest_plugins = ["slurm_cluster"]`` in a test module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")
START_DEADLINE_S = 60.0
#: Memory a job gets when it asks for none (without it CR_Core_Memory gives one job the whole node).
DEF_MEM_PER_CPU_MB = 1024


def _which(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for p in (Path("/usr/sbin") / name,) if p.exists()), None)


def _machine_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


@dataclass
class SlurmCluster:
    """A running cluster: its folder, configuration file and the environment that reaches it."""

    root: Path
    conf: Path
    cpus: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str) -> str:
        """A Slurm client command against this cluster; its stdout (its stderr in the error when it fails)."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def logs(self) -> str:
        """The daemons' logs (for a failing test's message)."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        """Cancel every job, stop the daemons this cluster started (slurmd, slurmctld, then munged), and end
        what its jobs left: slurmd does not take its jobs' steps down with it."""
        if all(process.poll() is None for process in self.processes):
            self._cancel_all_jobs()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        for pid in self._job_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _cancel_all_jobs(self) -> None:
        """scancel every job, then wait (with a deadline) until Slurm holds none."""
        subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True)
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            left = subprocess.run(["squeue", "--noheader"], env=self.env, capture_output=True, text=True)
            if left.returncode != 0 or not left.stdout.strip():
                return
            time.sleep(0.5)

    def _job_processes(self) -> list[int]:
        """Processes started for this cluster's jobs (slurmstepd, srun, the tasks): their environment names
        this cluster's configuration. This process and its parents are never among them."""
        mine = f"SLURM_CONF={self.conf}".encode()
        spared = {os.getpid(), os.getppid()}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in spared:
                continue
            try:
                if mine in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        return found


def _write_conf(root: Path, host: str, cpus: int, memory_mb: int) -> Path:
    (root / "state").mkdir()
    (root / "spool").mkdir()
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=aplabtest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        f"AuthInfo=socket={root / 'munge.socket'}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        f"DefMemPerCPU={DEF_MEM_PER_CPU_MB}",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=1",
        "MinJobAge=300",
        "MaxArraySize=1001",
        "KillWait=5",
        "InactiveLimit=0",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    return conf


def _wait_until_idle(cluster: SlurmCluster, host: str) -> None:
    """Wait until the node reports itself ready (idle), or fail with the daemons' logs."""
    deadline = time.monotonic() + START_DEADLINE_S
    state = ""
    while time.monotonic() < deadline:
        for process in cluster.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} exited with {process.returncode}\n{cluster.logs()}")
        probe = subprocess.run(["sinfo", "-h", "-n", host, "-o", "%T"], env=cluster.env, capture_output=True,
                               text=True)
        state = probe.stdout.strip()
        if probe.returncode == 0 and state == "idle":
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Slurm node is not idle after {START_DEADLINE_S:.0f} s (state {state!r})\n"
                       f"{cluster.logs()}")


def start_cluster(root: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd under ``root``; the caller stops them (``SlurmCluster.stop``)."""
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    memory_mb = max(DEF_MEM_PER_CPU_MB * cpus, _machine_memory_mb() // 2)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = _write_conf(root, host, cpus, memory_mb)
    cluster = SlurmCluster(root, conf, cpus)
    commands = [
        [_which("munged"), "--foreground", f"--key-file={key}", f"--socket={root / 'munge.socket'}",
         f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munged.seed'}",
         f"--log-file={root / 'munged.log'}", "--force"],
        [_which("slurmctld"), "-D", "-i", "-f", str(conf)],
        [_which("slurmd"), "-D", "-f", str(conf)],
    ]
    try:
        for command in commands:
            cluster.processes.append(subprocess.Popen(command, env=cluster.env, stdout=subprocess.DEVNULL,
                                                      stderr=open(root / f"{Path(command[0]).name}.out.log", "w"),
                                                      start_new_session=True))
            if command[0].endswith("munged"):
                _wait_for_file(root / "munge.socket", cluster)
        _wait_until_idle(cluster, host)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_for_file(path: Path, cluster: SlurmCluster) -> None:
    """Wait until ``path`` exists (a daemon's socket), or fail with the daemons' logs."""
    deadline = time.monotonic() + START_DEADLINE_S
    while not path.exists():
        if time.monotonic() > deadline or any(p.poll() is not None for p in cluster.processes):
            raise RuntimeError(f"{path} did not appear\n{cluster.logs()}")
        time.sleep(0.1)


def slurm_missing() -> str | None:
    """Why no test cluster can start here, or None."""
    missing = [name for name in (*DAEMONS, "sbatch", "squeue", "scancel", "sinfo") if _which(name) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing; .ci/run installs it)"
    if os.geteuid() != 0:
        return "the test Slurm cluster runs its daemons as root"
    return None


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running one-node Slurm cluster; ``SLURM_CONF`` points at it for the whole session."""
    reason = slurm_missing()
    if reason:
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        cluster.stop()
