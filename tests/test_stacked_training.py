"""Stacked training: K runs as one fused model, each member exactly its solo run and still its own run."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from aplab.errors import ConfigError, RunClaimed
from aplab.keys import M, T
from aplab.models import build_model, float32_head
from aplab.models.stacked import StackedForward, stack_inputs
from aplab.status import RunStatus
from aplab.tracking import MemoryTracker
from aplab.train import NonFiniteLoss, train, train_stack
from aplab.train.claim import RunClaim

TIMING = {M.EPOCH_SECONDS, M.IMAGES_PER_SECOND}

#: A stack mixing losses (with ANL's L1 penalty), loss weights, seeds, noise kinds and rates, lr, momentum and
#: validation fractions (so the members' training splits differ in size: ragged last batches, and a member
#: with one batch more than the others).
MIXED = [
    {"loss.name": "ce", "runtime.seed": 0, "noise.spec": "symmetric:0.6"},
    {"loss.name": "nce+rce", "loss.alpha": 5.0, "loss.beta": 0.5, "runtime.seed": 1, "noise.spec": "symmetric:0.2",
     "data.val_fraction": 0.1},
    {"loss.name": "gce", "runtime.seed": 2, "noise.spec": "asymmetric:0.4", "optim.lr": 0.02},
    {"loss.name": "anl-ce", "runtime.seed": 3, "noise.spec": "symmetric:0.8", "optim.momentum": 0.5,
     "data.val_fraction": 0.25},
]


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


@pytest.fixture
def member(small_run):
    """A digits cnn4 run of 3 epochs in float64 on the CPU on one thread (``auto`` counts the cores free at the
    run's start, so a solo run and its stack could record different runtime.threads_used tags), with overrides."""

    def make(workdir: str = "runs", **overrides):
        cfg = small_run(**{"model.name": "cnn4", "optim.epochs": 3, "runtime.precision": "fp64",
                           "runtime.device": "cpu", "runtime.threads": 1, **overrides})
        cfg.tracking.workdir = cfg.tracking.workdir.replace("/runs", f"/{workdir}")
        return cfg

    return make


@pytest.mark.parametrize("name,size", [("cnn4", 8), ("cnn8", 32)])
def test_the_fused_forward_gives_each_member_its_own_outputs_gradients_and_statistics(name, size):
    torch.manual_seed(0)
    members = [float32_head(build_model(name, 10, 3, size)).double() for _ in range(3)]
    solos = [copy.deepcopy(m) for m in members]
    images = [torch.randn(6, 3, size, size, dtype=torch.float64) for _ in members]
    out = StackedForward(members)(stack_inputs(images))
    (out * torch.arange(10, dtype=torch.float64)).sum().backward()
    for k, (solo, x) in enumerate(zip(solos, images)):
        ref = solo(x)
        (ref * torch.arange(10, dtype=torch.float64)).sum().backward()
        assert torch.allclose(out[k], ref, rtol=0, atol=1e-12)
        for (key, a), b in zip(members[k].named_parameters(), solo.parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=0, atol=1e-10), key
        for (key, a), b in zip(members[k].state_dict().items(), solo.state_dict().values()):
            assert torch.equal(a, b) if a.dtype == torch.int64 else torch.allclose(a, b, rtol=0, atol=1e-12), key
    for model in members + solos:
        model.eval()
    out = StackedForward(members)(stack_inputs(images))
    for k, (solo, x) in enumerate(zip(solos, images)):
        assert torch.allclose(out[k], solo(x), rtol=0, atol=1e-12)


def test_every_member_of_a_mixed_stack_trains_exactly_as_its_solo_run_in_float64(member):
    solo_tracker, stack_tracker = MemoryTracker(), MemoryTracker()
    solos = [train(member("solo", **o), tracker=solo_tracker, progress=False) for o in MIXED]
    stacked = train_stack([member("stack", **o) for o in MIXED], tracker=stack_tracker, progress=False)
    sizes = {int(run.params["data.train_size"]) for run in stack_tracker.runs.values()}
    assert len(sizes) == 3  # the members' training splits differ: ragged steps were trained
    ids = set()
    for slot, (solo, result) in enumerate(zip(solos, stacked)):
        assert result.status == RunStatus.FINISHED and result.config_hash == solo.config_hash
        assert len(result.history) == 3
        for a, b in zip(without_timing(solo.history), without_timing(result.history)):
            assert a.keys() == b.keys()
            for key in a:
                assert abs(a[key] - b[key]) <= 1e-9, (slot, a["epoch"], key)
        run, solo_run = stack_tracker.runs[result.run_id], solo_tracker.runs[solo.run_id]
        workdir = "tracking.workdir"  # the one setting the test gives them apart
        assert {k: v for k, v in run.params.items() if k != workdir} == {
            k: v for k, v in solo_run.params.items() if k != workdir}
        extra = {T.STACK_ID, T.STACK_SIZE, T.STACK_SLOT, T.RUN_KEY}  # the run key: each run folder's own, random
        assert {k: v for k, v in run.tags.items() if k not in extra} == {
            k: v for k, v in solo_run.tags.items() if k != T.RUN_KEY}
        assert len(run.tags[T.RUN_KEY]) == len(solo_run.tags[T.RUN_KEY]) == 32
        assert run.tags[T.STACK_SIZE] == "4" and run.tags[T.STACK_SLOT] == str(slot)
        assert set(run.metrics) == set(solo_run.metrics)
        ids.add(run.tags[T.STACK_ID])
    assert len(ids) == 1
    again = train_stack([member("stack", **o) for o in MIXED], tracker=stack_tracker, progress=False)
    assert [r.status for r in again] == [RunStatus.SKIPPED] * 4 and len(stack_tracker.runs) == 4


def test_a_member_whose_loss_is_not_finite_fails_alone_and_the_others_finish(member):
    tracker = MemoryTracker()
    nan = {"loss.name": "ce", "optim.lr": 1e30, "optim.grad_clip": 0.0, "runtime.seed": 5}
    solo = train(member("solo", **MIXED[1]), tracker=MemoryTracker(), progress=False)
    outcomes = train_stack([member(**MIXED[0]), member(**nan), member(**MIXED[1])], tracker=tracker, progress=False)
    assert isinstance(outcomes[1], NonFiniteLoss) and "epoch 1: lower optim.lr" in str(outcomes[1])
    assert outcomes[0].status == outcomes[2].status == RunStatus.FINISHED
    failed = [run for run in tracker.runs.values() if run.status == "FAILED"]
    assert len(failed) == 1 and "at epoch 1" in failed[0].tags[T.FAILURE_REASON]
    for a, b in zip(without_timing(solo.history), without_timing(outcomes[2].history)):
        assert all(abs(a[k] - b[k]) <= 1e-9 for k in a)


def test_a_member_claimed_by_another_trainer_is_refused_and_a_stack_member_cannot_be_trained_beside_it(member):
    from aplab.config import config_hash
    from aplab.config.resolve import resolve

    cfgs = [member(**o) for o in MIXED[:2]]
    held = resolve(cfgs[0])
    folder = held.tracking.workdir + f"/{held.tracking.experiment}/{config_hash(held)}"
    refused: list[BaseException] = []

    def train_beside(epoch, metrics):  # another trainer of member 1 while the stack trains it
        if epoch == 1:
            with pytest.raises(RunClaimed) as err:
                train(cfgs[1], tracker=MemoryTracker(), progress=False)
            refused.append(err.value)

    with RunClaim(folder):
        outcomes = train_stack(cfgs, tracker=MemoryTracker(), progress=False, on_epoch=[None, train_beside])
    assert isinstance(outcomes[0], RunClaimed)
    assert outcomes[1].status == RunStatus.FINISHED and len(refused) == 1


def test_a_run_started_solo_resumes_in_a_stack_to_its_solo_result(member):
    class Stop(Exception):
        pass

    def stop_after_first(epoch, metrics):
        if epoch == 1:
            raise Stop

    straight = train(member("straight", **MIXED[2]), tracker=MemoryTracker(), progress=False)
    with pytest.raises(Stop):
        train(member(**MIXED[2]), tracker=MemoryTracker(), progress=False, on_epoch=stop_after_first)
    outcomes = train_stack([member(**MIXED[0]), member(**MIXED[2])], tracker=MemoryTracker(), progress=False)
    resumed = outcomes[1]
    assert resumed.status == RunStatus.FINISHED and [row["epoch"] for row in resumed.history] == [1, 2, 3]
    for a, b in zip(without_timing(straight.history), without_timing(resumed.history)):
        assert all(abs(a[k] - b[k]) <= 1e-9 for k in a), a["epoch"]


def test_a_member_killed_after_its_last_checkpoint_finishes_in_a_stack_without_training_more(member):
    """Issue 22.7 in a stack: a member whose every epoch is checkpointed is finished, not trained past its end."""
    class Stop(Exception):
        pass

    def stop_after_last(epoch, metrics):
        if epoch == 3:
            raise Stop

    straight = train(member("straight", **MIXED[2]), tracker=MemoryTracker(), progress=False)
    with pytest.raises(Stop):
        train(member(**MIXED[2]), tracker=MemoryTracker(), progress=False, on_epoch=stop_after_last)
    trained: list[int] = []
    outcomes = train_stack([member(**MIXED[0]), member(**MIXED[2])], tracker=MemoryTracker(), progress=False,
                           on_epoch=[None, lambda epoch, metrics: trained.append(epoch)])
    finished = outcomes[1]
    assert trained == [] and finished.status == RunStatus.FINISHED
    assert [row["epoch"] for row in finished.history] == [1, 2, 3]
    assert finished.summary == straight.summary and f"{M.TEST_ACC_CLASS}/0" in finished.summary
    assert (finished.run_dir / "artifacts" / "confusion.png").exists()
    assert outcomes[0].status == RunStatus.FINISHED


@pytest.mark.parametrize("override,field", [
    ({"optim.batch_size": 32}, "optim.batch_size"),
    ({"model.name": "cnn8"}, "model.name"),
    ({"loss.name": "nlnl"}, "loss.name"),
    ({}, "stack"),  # the same config twice
])
def test_members_that_cannot_share_a_stack_are_refused_in_one_line_naming_the_field(member, override, field):
    with pytest.raises(ConfigError) as err:
        train_stack([member(**MIXED[0]), member(**{**MIXED[0], **override})], tracker=MemoryTracker(),
                    progress=False)
    assert err.value.field == field and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- entry points

QUICKSTART = Path(__file__).resolve().parents[1] / "pipelines" / "quickstart.yaml"
PAPER_GRID = Path(__file__).resolve().parents[1] / "search_spaces" / "apl_paper_grid.yaml"
ONE_EPOCH = ["--set", "optim.epochs=1", "--set", "tracking.log_model=false", "--set", "tracking.system_metrics=false",
             "--no-progress"]


def store_runs(db: Path):
    from aplab.tracking import make_tracker

    tracker = make_tracker(f"sqlite:///{db}")
    return {run.tags[T.CONFIG_HASH]: run for exp in ("aplab-quickstart", "aplab")
            for run in tracker.find_runs(exp) if T.CONFIG_HASH in run.tags}


def assert_like_solo_runs(stacked: dict, solo: dict) -> None:
    """The stacked runs are the solo runs' configs (hash, params, tags) with the same metric names, plus stack tags."""
    assert stacked.keys() == solo.keys() and len(stacked) == 12
    for digest, run in stacked.items():
        other = solo[digest]
        assert run.status == other.status == "FINISHED"
        differ = {"tracking.workdir", "tracking.uri"}  # where each test put its store
        assert {k: v for k, v in run.params.items() if k not in differ} == {
            k: v for k, v in other.params.items() if k not in differ}
        assert set(run.metrics) == set(other.metrics)
        assert T.STACK_ID in run.tags and T.STACK_ID not in other.tags
        assert run.tags[T.LOSS] == other.tags[T.LOSS] and run.tags[T.SEED] == other.tags[T.SEED]


def test_pipeline_run_stack_8_trains_the_quickstart_as_stacks_of_runs_a_solo_run_would_make(tmp_path, monkeypatch):
    from aplab.cli.command import main

    for name, stack in (("solo", "auto"), ("stacked", "8")):  # auto on a CPU: each run alone (it does not pay)
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        assert main(["pipeline", "run", str(QUICKSTART), "--stack", stack, "--tracking-uri",
                     f"sqlite:///{folder / 'm.db'}", *ONE_EPOCH]) == 0
    stacked, solo = store_runs(tmp_path / "stacked" / "m.db"), store_runs(tmp_path / "solo" / "m.db")
    assert_like_solo_runs(stacked, solo)
    sizes = sorted(r.tags[T.STACK_SIZE] for r in stacked.values())
    assert sizes == ["4"] * 4 + ["8"] * 8  # at most 8 per stack: the 12 runs as 8 + 4
    assert len({r.tags[T.STACK_ID] for r in stacked.values()}) == 2


def test_a_study_with_stack_12_trains_the_grid_as_one_stack_of_trials_like_solo_trials(tmp_path, monkeypatch):
    from aplab.cli.command import main

    for name, stack in (("solo", "1"), ("stacked", "12")):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        assert main(["study", "--space", str(PAPER_GRID), "--study-name", "s", "--storage", "optuna.journal",
                     "--tracking-uri", f"sqlite:///{folder / 'm.db'}", "--dataset", "digits", "--loss", "nce+rce", "--noise",
                     "symmetric:0.6", "--stack", stack, *ONE_EPOCH]) == 0
    stacked = {d: r for d, r in store_runs(tmp_path / "stacked" / "m.db").items() if r.tags.get("study.role") == "trial"}
    solo = {d: r for d, r in store_runs(tmp_path / "solo" / "m.db").items() if r.tags.get("study.role") == "trial"}
    assert_like_solo_runs(stacked, solo)
    assert {r.tags[T.STACK_SIZE] for r in stacked.values()} == {"12"}
    assert len({r.tags[T.STACK_ID] for r in stacked.values()}) == 1
    assert all(r.tags["trial.state"] == "COMPLETE" for r in stacked.values())


def test_stack_flag_values_are_checked_in_one_line(capsys):
    from aplab.cli.command import main

    assert main(["pipeline", "run", str(QUICKSTART), "--stack", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--stack" in err and "auto" in err


# ----------------------------------------------------------------------------- SIGKILL

#: A stack of three digits runs in a child process that SIGKILLs itself (when KILL_AT is set) once every member
#: has checkpointed that epoch: the kill lands at one known point, and the same script then resumes the stack.
STACK_SCRIPT = """
import json, logging, os, signal, sys
from aplab.config import RunConfig, apply
from aplab.train import train_stack

logging.basicConfig(level=logging.INFO)
workdir, uri, experiment = sys.argv[1:4]
kill_at = int(os.environ.get("KILL_AT", "0"))
members = [("ce", 0, "symmetric:0.6"), ("nce+rce", 1, "symmetric:0.4"), ("gce", 2, "asymmetric:0.4")]
cfgs = []
for loss, seed, noise in members:
    cfg = RunConfig()
    for key, value in {"data.name": "digits", "model.name": "cnn4", "loss.name": loss, "runtime.seed": seed,
                       "noise.spec": noise, "optim.epochs": 4, "runtime.device": "cpu", "tracking.uri": uri,
                       "tracking.workdir": workdir, "tracking.experiment": experiment,
                       "tracking.system_metrics": False, "tracking.log_model": False}.items():
        apply(cfg, key, value)
    cfgs.append(cfg)

def hook(slot):
    def on_epoch(epoch, metrics):
        if epoch == kill_at and slot == len(members) - 1:
            os.kill(os.getpid(), signal.SIGKILL)
    return on_epoch

outcomes = train_stack(cfgs, progress=False, on_epoch=[hook(s) for s in range(len(members))])
print(json.dumps([o.history for o in outcomes]))
"""


@pytest.mark.slow
def test_a_killed_stack_resumes_every_member_bit_identical_to_an_uninterrupted_stack(tmp_path):
    import json
    import subprocess
    import sys

    from aplab.tracking import make_tracker
    from tests.helpers import aplab_env

    script = tmp_path / "stack.py"
    script.write_text(STACK_SCRIPT)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def run(experiment: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), str(tmp_path / "runs"), uri, experiment], cwd=tmp_path,
                              env=aplab_env(**env), capture_output=True, text=True, timeout=900)

    killed = run("aplab", KILL_AT="2")
    assert killed.returncode == -9, killed.stderr
    resumed = run("aplab")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("at epoch 3") == 3, resumed.stderr  # "resuming <run> at epoch 3", each member
    straight = run("straight")
    assert straight.returncode == 0, straight.stderr
    for after_kill, uninterrupted in zip(json.loads(resumed.stdout), json.loads(straight.stdout)):
        assert [row["epoch"] for row in after_kill] == [1, 2, 3, 4]
        assert without_timing(after_kill) == without_timing(uninterrupted)  # bit for bit
    tracker = make_tracker(uri)
    runs = tracker.find_runs("aplab")
    assert len(runs) == 3 and all(r.status == "FINISHED" for r in runs)  # the killed runs, resumed
    for run_record in runs:
        steps = sorted(step for step, _ in tracker.metric_history(run_record.run_id, M.TRAIN_LOSS))
        assert steps == [1, 2, 3, 4]  # every epoch logged once


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_in_bf16_a_stack_trains_each_member_close_to_its_solo_run(member):
    cuda = {"runtime.device": "cuda", "runtime.precision": "bf16"}
    solos = [train(member("solo", **o, **cuda), tracker=MemoryTracker(), progress=False) for o in MIXED[:2]]
    stacked = train_stack([member("stack", **o, **cuda) for o in MIXED[:2]], tracker=MemoryTracker(), progress=False)
    for solo, result in zip(solos, stacked):
        assert result.status == RunStatus.FINISHED
        assert abs(solo.history[-1][M.TEST_ACC] - result.history[-1][M.TEST_ACC]) < 0.05


def test_cells_are_stacked_by_what_they_share_and_nlnl_or_a_resnet_trains_alone(tmp_path):
    from aplab.pipeline.spec import expand, load_pipeline
    from aplab.pipeline.stacks import parse_stack, stack_jobs

    spec = tmp_path / "p.yaml"
    spec.write_text("name: p\nexperiment: p\nmatrix:\n  dataset: [digits]\n  loss: [ce, nlnl, gce, sce, mae]\n"
                    "  noise: [symmetric:0.4]\n  seed: [0]\n")
    cells = expand(load_pipeline(spec))
    jobs = stack_jobs(cells, parse_stack("2"), "cpu")
    assert [[c.config.loss.name for c in job] for job in jobs] == [["ce", "gce"], ["nlnl"], ["sce", "mae"]]
    assert [[c.config.loss.name for c in job] for job in stack_jobs(cells, parse_stack("1"), "cpu")] == [
        ["ce"], ["nlnl"], ["gce"], ["sce"], ["mae"]]
    resnet = tmp_path / "r.yaml"
    resnet.write_text("name: r\nexperiment: r\nmatrix:\n  dataset: [digits]\n  loss: [ce, gce]\n"
                      "  noise: [symmetric:0.4]\n  seed: [0]\noverrides:\n  model.name: resnet18\n")
    assert [len(job) for job in stack_jobs(expand(load_pipeline(resnet)), parse_stack("auto"), "cuda")] == [1, 1]
    assert [len(job) for job in stack_jobs(cells, parse_stack("auto"), "cuda")] == [4, 1]  # ce gce sce mae; nlnl
    assert [len(job) for job in stack_jobs(cells, parse_stack("auto"), "cpu")] == [1] * 5
