"""Slurm through submitit: the flags and their one-line errors, and end to end against a real one-node Slurm
(munged, slurmctld and slurmd started by ``tests/slurm_cluster.py``): a pipeline's job array trains every cell
once, a cancelled task's cell (its claim left as by a lost node) resumes into its run when the pipeline is
submitted again, a preempted task is requeued and resumes, two Slurm workers fill a study's grid with no
point twice, and a distributed cell trains as one run of two ranks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from aplab.cli.command import main
from aplab.errors import ConfigError
from aplab.keys import T
from aplab.train.claim import CLAIM_FILE
from aplab import placement
from aplab.placement import placement_tags
from aplab.cli.flags import slurm_options
from aplab.workers.slurm import active_tasks, parse_opts, parse_time
from aplab.tracking import make_tracker
from tests.helpers import aplab_command, aplab_env

pytest_plugins = ["slurm_cluster"]

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "pipelines" / "quickstart.yaml"
PAPER_GRID = ROOT / "search_spaces" / "apl_paper_grid.yaml"
PAPER_POINTS = {(a, b) for a in (0.1, 1.0, 10.0) for b in (0.1, 1.0, 10.0, 100.0)}
CPU_TASKS = ["--executor", "slurm", "--slurm-gpus-per-run", "0", "--slurm-time", "20", "--no-progress"]
EVENT_DEADLINE_S = 300.0


# ----------------------------------------------------------------------------- flags (no cluster)


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 2), ("4:00:00", 240), ("1-12", 2160),
                                           ("2-00:30", 2910), ("0-00:00:01", 1)])
def test_slurm_times_are_whole_minutes_rounded_up(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["", "1h", "0", "00:00:00", "1:2:3:4", "-5"])
def test_a_bad_slurm_time_is_a_config_error(text):
    with pytest.raises(ConfigError, match="--slurm-time"):
        parse_time(text)


def test_slurm_opts_are_sbatch_long_options():
    assert parse_opts(["constraint=a100", "--mail_type=END", "exclude = n1,n2"]) == (
        ("constraint", "a100"), ("mail-type", "END"), ("exclude", "n1,n2"))
    with pytest.raises(ConfigError, match="--slurm-opt"):
        parse_opts(["constraint"])


def slurm_args(**changed) -> SimpleNamespace:
    values = dict(slurm_partition=None, slurm_time="10", slurm_gpus_per_run=1, slurm_cpus_per_run=None,
                  slurm_mem=None, slurm_max_parallel=None, slurm_account=None, slurm_qos=None, slurm_opt=[])
    return SimpleNamespace(**{**values, **changed})


@pytest.mark.parametrize("changed, flag", [({"slurm_gpus_per_run": -1}, "--slurm-gpus-per-run"),
                                           ({"slurm_cpus_per_run": 0}, "--slurm-cpus-per-run"),
                                           ({"slurm_max_parallel": 0}, "--slurm-max-parallel"),
                                           ({"slurm_mem": "lots"}, "--slurm-mem")])
def test_bad_slurm_resources_are_config_errors(changed, flag):
    with pytest.raises(ConfigError, match=flag):
        slurm_options(slurm_args(**changed))


def test_a_distributed_run_needs_a_gpu_per_rank_in_its_task():
    from aplab.workers.slurm import SlurmOptions

    SlurmOptions(gpus_per_run=2).check_fits(2)
    SlurmOptions(gpus_per_run=0).check_fits(4)  # a CPU-only cluster: the ranks use gloo
    with pytest.raises(ConfigError) as refused:
        SlurmOptions(gpus_per_run=1).check_fits(2)
    assert refused.value.field == "--slurm-gpus-per-run"


def test_missing_submitit_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    monkeypatch.chdir(tmp_path)
    code = main(["pipeline", "run", str(QUICKSTART), "--scale", "smoke", "--executor", "slurm"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "pip install 'aplab[slurm]'" in err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "aplab_runs").exists()  # nothing half-made


def test_wait_without_slurm_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["pipeline", "run", str(QUICKSTART), "--scale", "smoke", "--wait"]) == 2
    assert "--wait" in capsys.readouterr().err


def test_a_study_on_slurm_refuses_storage_other_hosts_cannot_share(tmp_path, capsys):
    code = main(["study", "--space", str(PAPER_GRID), "--executor", "slurm", "--storage",
                 f"sqlite:///{tmp_path / 'optuna.db'}", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--dataset", "digits", "--loss", "nce+rce", "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--storage" in err and "PostgreSQL" in err
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


NO_CONTROLLER = """ClusterName=none
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={port}
AuthType=auth/munge
NodeName=localhost CPUs=1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES
"""


@pytest.mark.parametrize("command", [
    ["pipeline", "run", str(QUICKSTART), "--scale", "smoke", "--executor", "slurm"],
    ["study", "--space", str(PAPER_GRID), "--executor", "slurm", "--dataset", "digits", "--loss", "nce+rce"],
])
def test_slurm_without_a_reachable_controller_is_one_line_and_leaves_nothing(command, tmp_path, capsys, monkeypatch):
    """Issue 22: submitit's sbatch failed after the store, run folders and a study's parent run were made."""
    from tests.helpers import free_port

    conf = tmp_path / "conf" / "slurm.conf"
    conf.parent.mkdir()
    conf.write_text(NO_CONTROLLER.format(port=free_port()))  # Slurm's real commands, no controller behind them
    monkeypatch.setenv("SLURM_CONF", str(conf))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(command)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Slurm controller" in err and "scontrol ping" in err, err
    assert list(work.iterdir()) == []


def test_runs_in_a_slurm_task_are_tagged_with_its_job_and_task(monkeypatch):
    from aplab.workers.slurm import SlurmScheduler

    monkeypatch.setattr(placement, "_scheduler", SlurmScheduler())  # as every entry point sets it
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    assert T.SLURM_JOB_ID not in placement_tags(None)
    monkeypatch.setenv("SLURM_JOB_ID", "107")  # task 3 of array 104 is job 107 of its own
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "104")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    tags = placement_tags(None)
    assert tags[T.SLURM_JOB_ID] == "104" and tags[T.SLURM_TASK_ID] == "3"


def test_a_cell_whose_task_ends_while_a_submission_looks_is_not_sent_again(tmp_path, monkeypatch):
    """A task that ends between the submission's two reads (what Slurm holds, what the store has FINISHED)
    must be seen in one of them: Slurm is asked first, so it is still held there or FINISHED in the store."""
    import aplab.executors.slurm_pipeline as pipeline_slurm
    from aplab.pipeline import expand, parse_pipeline
    from aplab.workers.slurm import SlurmOptions
    from aplab.tracking import MemoryTracker

    spec = parse_pipeline({"name": "race", "experiment": "race", "matrix": {
        "dataset": ["digits"], "noise": ["symmetric:0.4"], "seed": [0], "loss": ["ce", "gce"]}})
    idle, racing = expand(spec, workdir=str(tmp_path / "runs"))
    store = MemoryTracker()
    run_id = store.start_run("race", "gce", {T.CONFIG_HASH: racing.digest})  # its task trains it: RUNNING
    record = pipeline_slurm.submission_log([idle])
    with record.locked():
        record.record(["5_1"], [racing.digest])  # an earlier submission sent the racing cell as task 5_1
    reads: list[str] = []

    def read(what: str) -> None:
        """The racing cell's task ends right after the first read, whichever it is."""
        reads.append(what)
        store.end_run(run_id, "FINISHED")

    def squeue(job_ids):
        active = {"5_1"} if store.runs[run_id].status == "RUNNING" else set()
        read("squeue")
        return active

    real_find_runs = store.find_runs

    def find_runs(experiment, tags=None):
        runs = real_find_runs(experiment, tags)
        read("store")
        return runs

    sent: list = []
    monkeypatch.setattr(store, "find_runs", find_runs)
    monkeypatch.setattr("aplab.workers.slurm.active_tasks", squeue)
    monkeypatch.setattr(pipeline_slurm, "make_executor", lambda folder, options, name: None)
    monkeypatch.setattr(pipeline_slurm, "submit_array",  # each item is a job: its cells (one, or a stack)
                        lambda executor, task, jobs: sent.extend(c for job in jobs for c in job) or ["6"] * len(jobs))
    submission = pipeline_slurm.submit_pipeline([idle, racing], "race", store, SlurmOptions(gpus_per_run=0))
    assert sent == [idle] and submission.cells == [idle]  # the racing cell is not sent twice ...
    assert submission.finished == 1 and submission.held == {}  # ... it is FINISHED
    assert reads == ["squeue", "store"]


# ----------------------------------------------------------------------------- a real Slurm


def aplab(cwd: Path, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``aplab ARGV`` in a child process in ``cwd`` (the Slurm tasks inherit its environment and folder)."""
    return subprocess.run(aplab_command(*argv), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=aplab_env(MLFLOW_TRACKING_URI=f"sqlite:///{cwd / 'mlflow.db'}"))


def job_id_of(output: str) -> str:
    line = next(line for line in output.splitlines() if "submitted Slurm job array" in line)
    return line.split("job array ")[1].split()[0]


def wait_until(what: str, condition, deadline_s: float = EVENT_DEADLINE_S, logs: Path | None = None):
    """Poll ``condition`` until it returns something true; fail naming ``what`` after the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    extra = "\n".join(p.read_text()[-2000:] for p in sorted(logs.glob("*.err"))) if logs else ""
    pytest.fail(f"not within {deadline_s:.0f} s: {what}\n{extra}")


def first_epoch_run_id(state_file: Path) -> str | None:
    """The run id in a run folder's ``state.json`` once its first epoch is checkpointed; None before."""
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    return state.get("run_id") if state.get("history") else None


def steps(tracker, run_id: str) -> list[int]:
    return sorted(step for step, _ in tracker.metric_history(run_id, "test/acc"))


@pytest.mark.slow
def test_a_pipeline_on_slurm_trains_every_cell_once_then_sends_nothing(slurm_cluster, tmp_path):
    done = aplab(tmp_path, "pipeline", "run", str(QUICKSTART), "--scale", "smoke", *CPU_TASKS, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    job = job_id_of(done.stdout)
    assert "4 runs: 4 trained now, 0 already finished, 0 failed" in done.stdout
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = tracker.find_runs("aplab-quickstart-smoke")
    assert len(runs) == 4 and all(r.status == "FINISHED" for r in runs)
    assert len({r.tags[T.CONFIG_HASH] for r in runs}) == 4
    assert {r.tags[T.SLURM_JOB_ID] for r in runs} == {job}
    assert sorted(int(r.tags[T.SLURM_TASK_ID]) for r in runs) == [0, 1, 2, 3]
    assert all(steps(tracker, r.run_id) == [1, 2, 3] for r in runs)  # each trained once: 3 epochs, 3 values

    again = aplab(tmp_path, "pipeline", "run", str(QUICKSTART), "--scale", "smoke", *CPU_TASKS)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to submit (4 of 4 cells finished)" in again.stdout
    status = aplab(tmp_path, "pipeline", "status", str(QUICKSTART), "--scale", "smoke")
    assert "4 cells: 4 finished, 0 running, 0 failed, 0 pending" in status.stdout, status.stdout + status.stderr


@pytest.mark.slow
def test_a_stacked_pipeline_on_slurm_sends_one_task_per_stack(slurm_cluster, tmp_path):
    done = aplab(tmp_path, "pipeline", "run", str(QUICKSTART), "--scale", "smoke", "--stack", "2", *CPU_TASKS,
                 "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 runs: 4 trained now, 0 already finished, 0 failed" in done.stdout
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = tracker.find_runs("aplab-quickstart-smoke")
    assert len(runs) == 4 and all(r.status == "FINISHED" for r in runs)
    tasks = {}
    for run in runs:  # two stacks of two: each stack's members share one array task
        tasks.setdefault(run.tags[T.SLURM_TASK_ID], set()).add(run.tags[T.STACK_ID])
    assert len(tasks) == 2 and all(len(ids) == 1 for ids in tasks.values())
    assert all(steps(tracker, r.run_id) == [1, 2, 3] for r in runs)
    again = aplab(tmp_path, "pipeline", "run", str(QUICKSTART), "--scale", "smoke", "--stack", "2", *CPU_TASKS)
    assert "nothing to submit (4 of 4 cells finished)" in again.stdout, again.stdout + again.stderr


EPOCHS = 4
#: The digits training split (1,149 images) is 144 batches of 8: the gated loss holds in epoch 2 until let go.
HOLD_AFTER_STEPS = 200
GATED_LOSS = '''
"""Cross-entropy that, past HOLD_AFTER training steps, waits while the file HOLD exists: a test stops its
task mid-run after its first checkpoint, whatever the machine's speed, then lets the resumed run through."""
import os
import time

import torch.nn.functional as F
from torch import nn

HOLD, HOLD_AFTER = {hold!r}, {after}


class Ce(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.steps = 0

    def forward(self, logits, targets):
        if logits.requires_grad:  # a training step (evaluation runs under no_grad)
            self.steps += 1
            while self.steps > HOLD_AFTER and os.path.exists(HOLD):
                time.sleep(0.05)  # in the Slurm task: the test waits on Slurm's state, not on this
        return F.cross_entropy(logits, targets, reduction="none")
'''
TWO_CELLS = f"""
name: two
experiment: two
matrix:
  dataset: [digits]
  noise: [symmetric:0.4]
  loss: [gated_loss:Ce, gce]
  seed: [0]
overrides:
  optim.epochs: {EPOCHS}
  optim.batch_size: 8
  tracking.log_model: false
"""


def hold_the_gated_loss(folder: Path) -> Path:
    """Write ``gated_loss.py`` into ``folder`` (the Slurm tasks' working directory) and its hold file."""
    hold = folder / "hold"
    hold.write_text("")
    (folder / "gated_loss.py").write_text(GATED_LOSS.format(hold=str(hold), after=HOLD_AFTER_STEPS))
    return hold


def gated_cell(folder: Path, keys: list[str]) -> str:
    """The key of the cell training with the gated loss, once its run folder's state names its loss."""
    for key in keys:
        state = folder / key / "state.json"
        if state.exists() and json.loads(state.read_text())["params"]["loss.name"] == "gated_loss:Ce":
            return key
    return ""


@pytest.mark.slow
def test_a_cancelled_task_resumes_into_its_run_when_the_pipeline_is_sent_again(slurm_cluster, tmp_path):
    """Its claim is left as by a task lost with its node (another host's, heartbeat fresh): Slurm says the
    task is gone, so the next submission's task takes the claim over instead of failing on it."""
    pipeline = tmp_path / "two.yaml"
    pipeline.write_text(TWO_CELLS)
    hold = hold_the_gated_loss(tmp_path)
    sent = aplab(tmp_path, "pipeline", "run", str(pipeline), *CPU_TASKS)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    job = job_id_of(sent.stdout)
    folder = tmp_path / "aplab_runs" / "two"
    logs = folder / "slurm" / "logs"
    record = json.loads((folder / "slurm" / "submissions.jsonl").read_text())
    assert record["tasks"] == [f"{job}_0", f"{job}_1"]
    victim = wait_until("the gated cell's run starts", lambda: gated_cell(folder, record["keys"]), logs=logs)
    task = record["tasks"][record["keys"].index(victim)]
    state_file = folder / victim / "state.json"

    run_id = wait_until("the gated cell finishes its first epoch", lambda: first_epoch_run_id(state_file), logs=logs)
    slurm_cluster.run("scancel", task)
    wait_until("Slurm holds no task of the first array", lambda: not active_tasks([job]))
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = {r.tags[T.CONFIG_HASH]: r for r in tracker.find_runs("two")}
    assert runs[victim].status != "FINISHED"  # cancelled mid-run
    other = next(d for d in runs if d != victim)
    assert runs[other].status == "FINISHED"
    epochs_before = len(steps(tracker, run_id))
    assert 1 <= epochs_before < EPOCHS
    hold.unlink()  # the resumed run trains through
    now = time.time()
    lost = {"host": "lost-node", "pid": 4242, "process_start": 1.0, "since": now, "heartbeat": now,
            "slurm_job": job, "slurm_task": "0"}
    (state_file.parent / CLAIM_FILE).write_text(json.dumps(lost))

    resumed = aplab(tmp_path, "pipeline", "run", str(pipeline), *CPU_TASKS, "--wait")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "(1 of 2 cells; 1 finished)" in resumed.stdout  # only the cancelled cell is sent again
    assert "2 runs: 1 trained now, 1 already finished, 0 failed" in resumed.stdout
    after = tracker.find_runs("two")
    assert len(after) == 2 and all(r.status == "FINISHED" for r in after)  # no new run: the same run id resumed
    by_digest = {r.tags[T.CONFIG_HASH]: r for r in after}
    assert by_digest[victim].run_id == run_id
    assert job_id_of(resumed.stdout) != job
    assert by_digest[victim].tags[T.SLURM_JOB_ID] == job_id_of(resumed.stdout)  # where the run last trained
    assert steps(tracker, run_id) == list(range(1, EPOCHS + 1))  # every epoch logged once: resumed, not restarted
    assert steps(tracker, by_digest[other].run_id) == list(range(1, EPOCHS + 1))  # the other cell was not trained again
    history = json.loads(state_file.read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_two_slurm_workers_fill_the_paper_grid_with_no_point_twice(slurm_cluster, tmp_path):
    import optuna
    from optuna.trial import TrialState

    from aplab.study.queue import ATTR_OWNER
    from aplab.study.storage import open_storage

    journal = tmp_path / "optuna.journal"
    done = aplab(tmp_path, "study", "--space", str(PAPER_GRID), "--study-name", "s", "--storage", str(journal),
                 "--workdir", str(tmp_path / "runs"), "--dataset", "digits", "--loss", "nce+rce", "--noise",
                 "symmetric:0.6", "--epochs", "1", "--set", "tracking.log_model=false", "--set",
                 "optim.batch_size=256", "--workers", "2", *CPU_TASKS, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    job = job_id_of(done.stdout)
    trials = optuna.load_study(study_name="s", storage=open_storage(str(journal))).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 12 and len(trials) == 12
    points = Counter((float(t.params["loss.alpha"]), float(t.params["loss.beta"])) for t in complete)
    assert set(points) == PAPER_POINTS and max(points.values()) == 1
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parents = tracker.find_runs("aplab", {T.STUDY_ROLE: "study"})
    assert len(parents) == 1 and parents[0].status == "FINISHED"
    children = tracker.find_runs("aplab", {"mlflow.parentRunId": parents[0].run_id})
    assert len(children) == 12 and {r.tags[T.SLURM_JOB_ID] for r in children} == {job}
    # both workers ran trials: the two array tasks tagged runs, and two processes own the trials
    assert {r.tags[T.SLURM_TASK_ID] for r in children} == {"0", "1"}
    assert len({(t.user_attrs[ATTR_OWNER]["host"], t.user_attrs[ATTR_OWNER]["pid"]) for t in complete}) == 2


ONE_CELL = TWO_CELLS.replace("name: two", "name: one").replace("experiment: two", "experiment: one").replace(
    "loss: [gated_loss:Ce, gce]", "loss: [gated_loss:Ce]")


@pytest.mark.slow
def test_a_preempted_task_is_requeued_and_resumes_its_run(slurm_cluster, tmp_path):
    pipeline = tmp_path / "one.yaml"
    pipeline.write_text(ONE_CELL)
    hold = hold_the_gated_loss(tmp_path)
    sent = aplab(tmp_path, "pipeline", "run", str(pipeline), *CPU_TASKS)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    job = job_id_of(sent.stdout)
    folder = tmp_path / "aplab_runs" / "one"
    record = json.loads((folder / "slurm" / "submissions.jsonl").read_text())
    digest, task = record["keys"][0], record["tasks"][0]
    assert task == job  # submitit sends one task as a plain job
    state_file = folder / digest / "state.json"

    run_id = wait_until("the task finishes its first epoch", lambda: first_epoch_run_id(state_file),
                        logs=folder / "slurm" / "logs")
    # Slurm's warning of a preemption or of the time limit: the signal submitit asks sbatch for (--signal USR2@90)
    slurm_cluster.run("scancel", "--signal=USR2", task)
    log_file = folder / "slurm" / "logs" / f"{task}_0_log.out"
    wait_until("submitit requeues the task", lambda: log_file.exists() and "Requeued job" in log_file.read_text(),
               logs=folder / "slurm" / "logs")

    def pending():
        return slurm_cluster.run("squeue", "--noheader", "--jobs", task, "--format=%T").strip() == "PENDING"

    wait_until("the requeued task waits in the queue", pending)
    hold.unlink()  # the requeued task trains through
    slurm_cluster.run("scontrol", "update", f"JobId={task}", "StartTime=now")  # Slurm holds a requeued job 2 min
    wait_until("the requeued task ends", lambda: not active_tasks([job]))
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = tracker.find_runs("one")
    assert [r.run_id for r in runs] == [run_id] and runs[0].status == "FINISHED"  # one run, resumed
    assert steps(tracker, run_id) == list(range(1, EPOCHS + 1))
    assert [h["epoch"] for h in json.loads(state_file.read_text())["history"]] == list(range(1, EPOCHS + 1))
    status = aplab(tmp_path, "pipeline", "status", str(pipeline))
    assert "1 cells: 1 finished" in status.stdout, status.stdout + status.stderr


@pytest.mark.slow
def test_cells_queued_in_slurm_are_not_sent_again(slurm_cluster, tmp_path):
    later = ["--slurm-opt", "begin=now+1hour"]  # the tasks wait in the queue: nothing trains meanwhile
    first = aplab(tmp_path, "pipeline", "run", str(QUICKSTART), "--scale", "smoke", *CPU_TASKS, *later)
    assert first.returncode == 0, first.stdout + first.stderr
    job = job_id_of(first.stdout)
    try:
        assert active_tasks([job]) == {f"{job}_{i}" for i in range(4)}
        again = aplab(tmp_path, "pipeline", "run", str(QUICKSTART), "--scale", "smoke", *CPU_TASKS, *later)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to submit (0 of 4 cells finished, 4 still queued or running in Slurm)" in again.stdout
        records = (tmp_path / "aplab_runs" / "aplab-quickstart-smoke" / "slurm" / "submissions.jsonl").read_text()
        assert len(records.splitlines()) == 1
        status = aplab(tmp_path, "pipeline", "status", str(QUICKSTART), "--scale", "smoke")
        assert "4 cells: 0 finished, 0 running, 0 failed, 4 pending" in status.stdout, status.stdout + status.stderr
    finally:
        slurm_cluster.run("scancel", job)


def aplab_in_background(cwd: Path, *argv: str) -> subprocess.Popen:
    """``aplab ARGV`` started in ``cwd`` and left running (a command that follows its Slurm job with --wait)."""
    return subprocess.Popen(aplab_command(*argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=aplab_env(MLFLOW_TRACKING_URI=f"sqlite:///{cwd / 'mlflow.db'}"))


def job_of_submission(folder: Path) -> str:
    """The job id of the one Slurm submission a pipeline folder has recorded, once it has ("" before)."""
    record = folder / "slurm" / "submissions.jsonl"
    return json.loads(record.read_text())["tasks"][0].split("_")[0] if record.exists() else ""


@pytest.mark.slow
def test_cells_whose_tasks_are_cancelled_while_queued_are_not_started_not_failed(slurm_cluster, tmp_path):
    later = ["--slurm-opt", "begin=now+1hour"]  # the tasks wait in the queue until they are cancelled
    waiting = aplab_in_background(tmp_path, "pipeline", "run", str(QUICKSTART), "--scale", "smoke", *CPU_TASKS,
                                  *later, "--wait")
    try:
        folder = tmp_path / "aplab_runs" / "aplab-quickstart-smoke"
        job = wait_until("the array is submitted", lambda: job_of_submission(folder))
        wait_until("Slurm queues its 4 tasks", lambda: len(active_tasks([job])) == 4)
        slurm_cluster.run("scancel", job)
        out, err = waiting.communicate(timeout=EVENT_DEADLINE_S)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, out + err
    assert "4 runs: 0 trained now, 0 already finished, 0 failed, 4 not started" in out
    lines = [line for line in out.splitlines() if line.startswith("  NOT_STARTED ")]
    assert len(lines) == 4 and all("its task was cancelled while queued" in line for line in lines)


ONE_POINT = "name: one_point\ngrid:\n  optim.lr: [0.01]\n"


@pytest.mark.slow
def test_a_study_whose_task_is_cancelled_mid_trial_exits_1_and_queues_the_point_again(slurm_cluster, tmp_path):
    import optuna
    from optuna.trial import TrialState

    from aplab.study.storage import open_storage

    space = tmp_path / "one_point.yaml"
    space.write_text(ONE_POINT)
    hold = hold_the_gated_loss(tmp_path)
    journal = tmp_path / "optuna.journal"
    command = ["study", "--space", str(space), "--study-name", "s", "--storage", str(journal), "--dataset", "digits",
               "--loss", "gated_loss:Ce", "--noise", "symmetric:0.4", "--epochs", str(EPOCHS), "--set",
               "optim.batch_size=8", "--set", "tracking.log_model=false", *CPU_TASKS, "--wait"]

    def trials():
        return optuna.load_study(study_name="s", storage=open_storage(str(journal))).get_trials() if journal.exists() else []

    waiting = aplab_in_background(tmp_path, *command)
    try:
        wait_until("the trial runs", lambda: [t for t in trials() if t.state == TrialState.RUNNING])
        out = slurm_cluster.run("squeue", "--noheader", "--format=%i")  # the study's one task
        slurm_cluster.run("scancel", *out.split())
        out, err = waiting.communicate(timeout=EVENT_DEADLINE_S)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, out + err  # was 0, with the trial left RUNNING
    assert "not finished: re-run the same command to resume" in out
    states = [t.state for t in trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]  # the point is queued again
    hold.unlink()
    resumed = aplab(tmp_path, *command)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [t.state for t in trials()] == [TrialState.FAIL, TrialState.COMPLETE]


DISTRIBUTED_CELL = """
name: ddp
experiment: ddp
matrix:
  dataset: [digits]
  noise: [symmetric:0.4]
  loss: [ce]
  seed: [0]
overrides:
  optim.epochs: 2
  optim.batch_size: 64
  tracking.log_model: false
  runtime.nproc_per_node: 2
"""


@pytest.mark.slow
def test_a_distributed_cell_trains_as_one_run_of_two_ranks_in_one_slurm_task(slurm_cluster, tmp_path):
    pipeline = tmp_path / "ddp.yaml"
    pipeline.write_text(DISTRIBUTED_CELL)
    done = aplab(tmp_path, "pipeline", "run", str(pipeline), *CPU_TASKS, "--slurm-cpus-per-run", "2", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    job = job_id_of(done.stdout)
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = tracker.find_runs("ddp")  # the two ranks train one run
    assert run.status == "FINISHED"
    assert (run.tags[T.WORLD_SIZE], run.tags[T.BACKEND], run.tags[T.SLURM_JOB_ID]) == ("2", "gloo", job)
    assert steps(tracker, run.run_id) == [1, 2]  # each epoch logged once, by rank 0
