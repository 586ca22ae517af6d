"""One trainer per run: a claimed run folder is refused with its owner named, and taken over when the
owner is gone (dead on this host, or silent too long on another)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aplab.cli.command import main
from aplab.errors import RunClaimed
from aplab.processes import process_start
from aplab.train.claim import CLAIM_FILE, ClaimOwner, RunClaim, read_owner
from aplab import placement
from aplab.workers.slurm import SlurmScheduler
from aplab.tracking import MemoryTracker
from aplab.train import train
from aplab.status import RunStatus

#: A child process that claims the run folder argv[1], says so, then blocks on its stdin (no sleep).
HOLDER = """
import sys
from aplab.train.claim import RunClaim
claim = RunClaim(sys.argv[1])
claim.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def write_claim(run_dir: Path, host: str, heartbeat: float, pid: int = 4242, process_start: float = 1.0,
                **slurm: str) -> None:
    """A claim.json as its owner writes it; without ``slurm`` (slurm_job, slurm_task) as claims before them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    owner = {"host": host, "pid": pid, "process_start": process_start, "since": heartbeat, "heartbeat": heartbeat,
             **slurm}
    (run_dir / CLAIM_FILE).write_text(json.dumps(owner))


def test_a_run_claimed_by_this_process_is_refused_with_its_owner_and_trains_nothing(small_run, tmp_path):
    run_dir, tracker = tmp_path / "run", MemoryTracker()
    held = RunClaim(run_dir)
    held.acquire()
    epochs: list[int] = []
    with pytest.raises(RunClaimed) as refused:
        train(small_run(), tracker, run_dir=run_dir, progress=False, on_epoch=lambda e, m: epochs.append(e))
    message = str(refused.value)
    assert f"pid {os.getpid()}" in message and f"host {socket.gethostname()}" in message and " since " in message
    assert epochs == [] and not (run_dir / "state.json").exists() and tracker.runs == {}
    held.release()
    result = train(small_run(), tracker, run_dir=run_dir, progress=False)
    assert result.status == RunStatus.FINISHED and read_owner(run_dir) is None  # released at the end


def test_the_claim_is_held_and_refreshed_while_the_run_trains(small_run, tmp_path):
    """After each epoch the heartbeat is set back an hour in claim.json: the next epoch's refresh must write a
    new one (a refresh that wrote nothing would leave the hour-old value)."""
    run_dir = tmp_path / "run"
    seen: list[ClaimOwner | None] = []
    set_back: list[float] = []

    def age_the_heartbeat(epoch, metrics):
        owner = read_owner(run_dir)
        seen.append(owner)
        set_back.append(owner.since - 3600.0)
        claim = json.loads((run_dir / CLAIM_FILE).read_text())
        (run_dir / CLAIM_FILE).write_text(json.dumps({**claim, "heartbeat": set_back[-1]}))  # the same owner
        assert read_owner(run_dir).heartbeat == set_back[-1]

    train(small_run(**{"optim.epochs": 3}), MemoryTracker(), run_dir=run_dir, progress=False,
          on_epoch=age_the_heartbeat)
    assert len(seen) == 3 and all(o is not None and o.pid == os.getpid() for o in seen)
    assert len({o.since for o in seen}) == 1  # one claim, held throughout
    for before, after in zip(set_back, seen[1:]):
        assert after.heartbeat > before and after.heartbeat >= after.since  # the refresh wrote a new one


def test_a_claim_of_a_live_process_refuses_and_its_death_frees_the_run(small_run, tmp_path):
    run_dir, tracker = tmp_path / "run", MemoryTracker()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunClaimed, match=f"pid {holder.pid} since"):
            train(small_run(), tracker, run_dir=run_dir, progress=False)
        assert not (run_dir / "state.json").exists()
    finally:
        holder.kill()  # SIGKILL: no release; the flock dies with the process
        holder.wait()
    assert read_owner(run_dir).pid == holder.pid  # its record is left behind ...
    result = train(small_run(), tracker, run_dir=run_dir, progress=False)  # ... and taken over at once
    assert result.status == RunStatus.FINISHED and len(result.history) == 2


def test_a_stale_claim_of_another_host_is_taken_over_and_a_fresh_one_refused(tmp_path):
    stale, fresh = tmp_path / "stale", tmp_path / "fresh"
    write_claim(stale, "elsewhere", time.time() - 120)
    write_claim(fresh, "elsewhere", time.time())
    claim = RunClaim(stale, stale_after_s=60)
    claim.acquire()
    assert (read_owner(stale).host, read_owner(stale).pid) == (socket.gethostname(), os.getpid())
    claim.release()
    with pytest.raises(RunClaimed, match="host elsewhere pid 4242"):
        RunClaim(fresh, stale_after_s=60).acquire()
    assert read_owner(fresh).host == "elsewhere"  # untouched


SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")


def in_slurm_task(monkeypatch, active: set[str] | Exception, **variables: str) -> list[list[str]]:
    """This process runs in the Slurm task ``variables`` say, and squeue reports ``active`` (or fails with it);
    returns the job ids squeue is asked about."""
    for name in SLURM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    asked: list[list[str]] = []

    class Squeue(SlurmScheduler):
        def active_tasks(self, job_ids):
            asked.append(list(job_ids))
            if isinstance(active, Exception):
                raise active
            return active

    monkeypatch.setattr(placement, "_scheduler", Squeue())
    return asked


@pytest.mark.parametrize("variables, recorded", [
    ({"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "80"}, {"slurm_job": "77",
                                                                                     "slurm_task": "3"}),
    ({"SLURM_JOB_ID": "80"}, {"slurm_job": "80"})])  # submitit sends a single task as a plain job
def test_a_claim_of_our_own_slurm_task_on_another_node_is_its_requeue_and_taken_over(tmp_path, monkeypatch,
                                                                                      variables, recorded):
    in_slurm_task(monkeypatch, {"77_3", "80"}, **variables)  # squeue lists our own task: it runs (this is it)
    write_claim(tmp_path, "lost-node", time.time(), **recorded)  # a fresh heartbeat: killed a moment ago
    claim = RunClaim(tmp_path)
    claim.acquire()
    owner = read_owner(tmp_path)
    assert (owner.host, owner.pid) == (socket.gethostname(), os.getpid())
    assert (owner.slurm_job, owner.slurm_task) == (recorded["slurm_job"], recorded.get("slurm_task"))
    claim.release()


def test_a_claim_of_a_slurm_task_no_longer_queued_or_running_is_taken_over(tmp_path, monkeypatch):
    asked = in_slurm_task(monkeypatch, {"77_3"}, SLURM_ARRAY_JOB_ID="91", SLURM_ARRAY_TASK_ID="0",
                          SLURM_JOB_ID="92")
    write_claim(tmp_path, "lost-node", time.time(), slurm_job="77", slurm_task="1")
    claim = RunClaim(tmp_path)
    claim.acquire()
    assert asked == [["77"]]
    assert (read_owner(tmp_path).host, read_owner(tmp_path).slurm_job) == (socket.gethostname(), "91")
    claim.release()


def test_a_claim_of_another_slurm_task_still_running_holds_until_its_heartbeat_is_stale(tmp_path, monkeypatch):
    in_slurm_task(monkeypatch, {"77_1", "77_3"}, SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID="3",
                  SLURM_JOB_ID="80")
    write_claim(tmp_path / "fresh", "other-node", time.time(), slurm_job="77", slurm_task="1")
    with pytest.raises(RunClaimed, match="host other-node pid 4242 since .* in Slurm task 77_1"):
        RunClaim(tmp_path / "fresh", stale_after_s=60).acquire()
    assert read_owner(tmp_path / "fresh").host == "other-node"  # untouched
    write_claim(tmp_path / "stale", "other-node", time.time() - 120, slurm_job="77", slurm_task="1")
    claim = RunClaim(tmp_path / "stale", stale_after_s=60)  # its task lives, but not the trainer that claimed
    claim.acquire()
    assert read_owner(tmp_path / "stale").host == socket.gethostname()
    claim.release()


def test_where_squeue_cannot_be_asked_a_slurm_claim_goes_by_its_heartbeat(tmp_path, monkeypatch):
    from aplab.workers.slurm import SlurmUnavailable

    asked = in_slurm_task(monkeypatch, SlurmUnavailable("squeue cannot tell"), SLURM_JOB_ID="80")
    write_claim(tmp_path / "fresh", "other-node", time.time(), slurm_job="77", slurm_task="1")
    write_claim(tmp_path / "stale", "other-node", time.time() - 120, slurm_job="77", slurm_task="1")
    with pytest.raises(RunClaimed, match="host other-node"):
        RunClaim(tmp_path / "fresh", stale_after_s=60).acquire()
    claim = RunClaim(tmp_path / "stale", stale_after_s=60)
    claim.acquire()
    assert asked == [["77"]] and read_owner(tmp_path / "stale").host == socket.gethostname()
    claim.release()


def test_a_claim_taken_over_by_another_host_stops_the_old_owner_at_its_next_heartbeat(tmp_path):
    claim = RunClaim(tmp_path / "run")
    claim.acquire()
    write_claim(tmp_path / "run", "elsewhere", time.time())
    with pytest.raises(RunClaimed, match="host elsewhere"):
        claim.refresh()
    claim.release()
    assert read_owner(tmp_path / "run").host == "elsewhere"  # the new owner's record stays


def test_a_claimed_run_is_one_line_and_exit_1_from_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = ["train", "--dataset", "digits", "--epochs", "1", "--no-progress", "--tracking-uri", "memory://",
               "--set", "tracking.system_metrics=false", "--set", "tracking.workdir=runs"]
    from aplab.cli.flags import config_from_args  # the run folder the command trains into
    from aplab.cli.command import build_parser
    from aplab.config import config_hash
    from aplab.config.resolve import resolve

    cfg = resolve(config_from_args(build_parser().parse_args(command)))
    held = RunClaim(Path("runs") / cfg.tracking.experiment / config_hash(cfg))
    held.acquire()
    try:
        assert main(command) == 1
    finally:
        held.release()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aplab: error:")]
    assert len(err) == 1 and "being trained by" in err[0] and f"pid {os.getpid()}" in err[0]


def test_without_flock_a_claim_of_this_host_holds_while_its_process_lives(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("aplab.train.claim.fcntl.flock", no_flock)
    host, now = socket.gethostname(), time.time()
    write_claim(tmp_path / "live", host, now, pid=os.getpid(), process_start=process_start(os.getpid()))
    with pytest.raises(RunClaimed, match=f"pid {os.getpid()}"):
        RunClaim(tmp_path / "live").acquire()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_claim(tmp_path / "dead", host, now, pid=int(gone.stdout), process_start=now)
    write_claim(tmp_path / "reused", host, now, pid=os.getpid(), process_start=1.0)  # same pid, another process
    for name in ("dead", "reused"):
        claim = RunClaim(tmp_path / name)
        claim.acquire()
        owner = read_owner(tmp_path / name)
        assert (owner.pid, owner.process_start) == (os.getpid(), process_start(os.getpid()))  # taken over
        claim.release()


#: `aplab train` that, after its first epoch, says so and waits for a line on stdin before going on.
TRAIN_PAUSED_AFTER_EPOCH_1 = """
import sys
import aplab.train
from aplab.cli import main

real = aplab.train.train

def paused(cfg, tracker=None, **kwargs):
    def tick(epoch, metrics):
        if epoch == 1:
            print("epoch 1 done", flush=True)
            sys.stdin.readline()
    return real(cfg, tracker, on_epoch=tick, **kwargs)

aplab.train.train = paused
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_second_train_of_a_running_run_is_refused_and_no_epoch_is_trained_twice(tmp_path, capsys, monkeypatch):
    from aplab.keys import M
    from aplab.tracking import make_tracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = ["train", "--dataset", "digits", "--epochs", "3", "--no-progress", "--tracking-uri", uri,
               "--experiment", "twice", "--set", "tracking.system_metrics=false", "--workdir", str(tmp_path / "runs")]
    first = subprocess.Popen([sys.executable, "-c", TRAIN_PAUSED_AFTER_EPOCH_1, *command], cwd=tmp_path,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "epoch 1 done"
        assert main(command) == 1
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aplab: error:")]
        assert len(err) == 1 and f"pid {first.pid}" in err[0]
        out, errors = first.communicate("go on\n", timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, errors[-2000:]
    (run,) = make_tracker(uri).find_runs("twice")
    steps = [step for step, _ in make_tracker(uri).metric_history(run.run_id, M.TEST_ACC)]
    assert run.status == "FINISHED" and sorted(steps) == [1, 2, 3]


def test_a_pipeline_cell_claimed_elsewhere_waits_and_trains_here_once_its_owner_dies(tmp_path, monkeypatch):
    from aplab.pipeline import busy, expand, parse_pipeline, run_pipeline

    spec = parse_pipeline({"name": "c", "experiment": "c", "overrides": {"optim.epochs": 1,
                                                                        "tracking.system_metrics": False},
                           "matrix": {"dataset": ["digits"], "noise": ["symmetric:0.4"], "seed": [0],
                                      "loss": ["ce", "gce"]}})
    cells = expand(spec, workdir=str(tmp_path / "runs"))
    held = RunClaim(tmp_path / "runs" / "c" / cells[1].digest)
    held.acquire()
    trained_before_the_wait = []

    def owner_dies(seconds):  # what the pipeline sees when the other trainer is killed before training gce
        trained_before_the_wait.append(len(tracker.runs))
        held.release()

    tracker = MemoryTracker()
    monkeypatch.setattr(busy, "pause", owner_dies)
    result = run_pipeline(cells, "c", tracker=tracker, progress=False)
    assert trained_before_the_wait == [1]  # ce trained first, then the pipeline waited for gce's claim
    assert [o.status for o in result.outcomes] == ["FINISHED", "FINISHED"] and len(tracker.runs) == 2
