"""Optuna studies (aplab.study): search-space parsing and its errors, the command's checks, the parent
run's status, and end-to-end studies on `digits` (1 epoch): 3 worker processes on the 12-point grid
and a worker killed mid-trial then resumed (both slow), a NaN trial, pruning, TPE, refit. Expected
values come from the space files and hand-made data. The trial queue is tested in test_study_queue.py."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from aplab.cli.command import main
from aplab.config import RunConfig, apply
from aplab.errors import ConfigError
from aplab.keys import T
from aplab.study.objective import OBJECTIVES
from aplab.study.parent import close_parent_run
from aplab.study.queue import ATTR_OWNER, ATTR_RETRY_REASON, retried
from aplab.study.runner import StudyOptions, run_study
from aplab.study.space_file import load_space, parse_space
from aplab.study.storage import default_storage, open_storage
from aplab.tracking import MemoryTracker, make_tracker

REPO = Path(__file__).resolve().parents[1]
PAPER_GRID = REPO / "search_spaces" / "apl_paper_grid.yaml"
TPE_SPACE = REPO / "search_spaces" / "apl_tpe.yaml"
# The paper's Figure 5 grid, written out independently of the space file.
PAPER_POINTS = {(a, b) for a in (0.1, 1.0, 10.0) for b in (0.1, 1.0, 10.0, 100.0)}
TINY = ["--dataset", "digits", "--loss", "nce+rce", "--noise", "symmetric:0.6", "--epochs", "1", "--no-progress",
        "--set", "tracking.log_model=false", "--set", "optim.batch_size=256"]

optuna.logging.set_verbosity(optuna.logging.WARNING)



def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def study_argv(tmp_path: Path, space: Path, *extra: str, name: str = "s") -> list[str]:
    return ["study", "--space", str(space), "--study-name", name, "--storage", str(tmp_path / "optuna.journal"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--workdir", str(tmp_path / "runs"),
            *TINY, *extra]


def load_study(tmp_path: Path, name: str = "s") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(tmp_path / "optuna.journal")))


def point(trial) -> tuple[float, float]:
    return (float(trial.params["loss.alpha"]), float(trial.params["loss.beta"]))


def base_config(**flat) -> RunConfig:
    cfg = RunConfig()
    values = {"data.name": "digits", "loss.name": "nce+rce", "noise.spec": "symmetric:0.6", "optim.epochs": 1,
              "optim.batch_size": 256, "tracking.log_model": False, "tracking.experiment": "t", **flat}
    for key, value in values.items():
        apply(cfg, key, value)
    return cfg


# ----------------------------------------------------------------------------- spaces


def test_paper_grid_file_is_the_papers_twelve_points():
    space = load_space(PAPER_GRID)
    assert space.is_grid and space.param_names == ["loss.alpha", "loss.beta"]
    points = space.points()
    assert len(points) == 12
    assert {(p["loss.alpha"], p["loss.beta"]) for p in points} == PAPER_POINTS


def test_tpe_file_is_log_uniform_alpha_beta_with_tpe_and_median_pruning():
    space = load_space(TPE_SPACE)
    assert not space.is_grid and space.points() == []
    for spec in space.params:
        assert spec.distribution() == FloatDistribution(0.01, 100.0, log=True)
    assert isinstance(space.make_sampler(), optuna.samplers.TPESampler)
    assert isinstance(space.make_pruner(), optuna.pruners.MedianPruner)


def test_each_distribution_kind_parses_to_its_optuna_distribution():
    space = parse_space({"params": {
        "optim.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
        "optim.weight_decay": {"type": "float", "low": 0.0, "high": 1e-3, "step": 1e-4},
        "optim.epochs": {"type": "int", "low": 2, "high": 10, "step": 2},
        "optim.batch_size": {"type": "int", "low": 16, "high": 256, "log": True},
        "loss.q": {"type": "categorical", "choices": [0.1, 0.7]},
        "loss.fidelity": {"type": "categorical", "choices": ["code", "paper"]},
    }, "sampler": {"name": "random", "seed": 3}, "n_trials": 5})
    got = {spec.name: spec.distribution() for spec in space.params}
    assert got == {
        "optim.lr": FloatDistribution(1e-3, 0.1, log=True),
        "optim.weight_decay": FloatDistribution(0.0, 1e-3, step=1e-4),
        "optim.epochs": IntDistribution(2, 10, step=2),
        "optim.batch_size": IntDistribution(16, 256, log=True),
        "loss.q": CategoricalDistribution([0.1, 0.7]),
        "loss.fidelity": CategoricalDistribution(["code", "paper"]),
    }
    assert space.n_trials == 5 and isinstance(space.make_sampler(), optuna.samplers.RandomSampler)


def test_a_seeded_sampler_draws_differently_for_each_trial_number():
    space = parse_space({"params": {"loss.alpha": {"type": "float", "low": 0.01, "high": 100, "log": True}},
                         "sampler": {"name": "random", "seed": 0}})
    dist = space.params[0].distribution()
    study = optuna.create_study()
    draws = [space.make_sampler(n).sample_independent(study, None, "x", dist) for n in (0, 1, 0)]
    assert draws[0] != draws[1] and draws[0] == draws[2]


@pytest.mark.parametrize("data, field", [
    ({"params": {"loss.alhpa": {"type": "float", "low": 0.1, "high": 1}}}, "loss.alhpa"),
    ({"grid": {}}, "grid"),
    ({"grid": {"loss.alpha": []}}, "grid.loss.alpha"),
    ({"params": {"loss.alpha": {"type": "float", "low": 10, "high": 1}}}, "params.loss.alpha.low"),
    ({"params": {"loss.alpha": {"type": "float", "low": 0, "high": 1, "log": True}}}, "params.loss.alpha.low"),
    ({"params": {"optim.epochs": {"type": "int", "low": 0, "high": 5, "log": True}}}, "params.optim.epochs.low"),
    ({"params": {"loss.alpha": {"type": "normal", "low": 0, "high": 1}}}, "params.loss.alpha.type"),
    ({"params": {"optim.epochs": {"type": "float", "low": 1, "high": 5}}}, "params.optim.epochs.type"),
    ({"params": {"loss.alpha": {"type": "float", "low": 1, "high": 2}}, "pruner": "meddian"}, "pruner.name"),
    ({"grid": {"loss.alpha": [1]}, "params": {}}, "x.yaml"),
])
def test_bad_spaces_name_the_field(data, field):
    with pytest.raises(ConfigError) as caught:
        parse_space(data, "x.yaml")
    assert field in str(caught.value)


@pytest.mark.parametrize("space_text, extra, expected", [
    ("params:\n  loss.alhpa: {type: float, low: 0.1, high: 1}\nn_trials: 2\n", [], "did you mean 'loss.alpha'"),
    ("grid: {}\n", [], "grid"),
    ("params:\n  loss.beta: {type: float, low: 5, high: 1}\nn_trials: 2\n", [], "params.loss.beta.low"),
    ("params:\n  loss.beta: {type: float, low: -1, high: 1, log: true}\nn_trials: 2\n", [], "params.loss.beta.low"),
    ("grid:\n  loss.q: [0.5]\n", [], "loss.q"),  # nce+rce takes no q: the config check names it
    ("grid:\n  loss.alpha: [1]\n", ["--n-trials", "3"], "--n-trials"),
    ("grid:\n  loss.alpha: [1]\n", ["--set", "loss.alpha=2"], "loss.alpha"),
    ("grid:\n  loss.alpha: [1]\n", ["--storage", "postgresql+psycopg://u:secret@127.0.0.1:9/optuna"],
     "cannot be reached"),
])
def test_bad_input_exits_2_with_one_line_before_any_trial(tmp_path, capsys, space_text, extra, expected):
    space = write(tmp_path / "bad.yaml", space_text)
    argv = study_argv(tmp_path, space)
    if "--storage" in extra:  # replace the journal storage
        at = argv.index("--storage")
        argv[at + 1] = extra[1]
        extra = []
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aplab: error:") and len(err.splitlines()) == 1 and expected in err
    assert "secret" not in err
    assert not (tmp_path / "optuna.journal").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("n_trials", ["0", "-3"])
def test_a_trial_budget_below_one_is_refused_not_replaced_by_the_files(tmp_path, capsys, n_trials):
    assert main(study_argv(tmp_path, TPE_SPACE, "--n-trials", n_trials)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"aplab: error: --n-trials={n_trials} is not allowed: an integer >= 1"
    assert not (tmp_path / "optuna.journal").exists() and not (tmp_path / "runs").exists()


def test_a_missing_space_file_is_named_as_the_space(tmp_path, capsys):
    assert main(study_argv(tmp_path, tmp_path / "nowhere.yaml")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aplab: error: --space=") and "nowhere.yaml" in err and "config file" not in err


IMPORTED_AFTER = """
import sys
from aplab.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(sorted(m for m in ("optuna", "torch") if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [["study", "--help"], ["study", "--space", "nowhere.yaml", "--dataset", "digits"],
                                  ["study", "--space", str(TPE_SPACE), "--n-trials", "0"]])
def test_help_and_argument_errors_import_neither_optuna_nor_torch(tmp_path, argv):
    done = subprocess.run([sys.executable, "-c", IMPORTED_AFTER, *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("done, dead, status", [(True, ["worker 1 (pid 9) ended with signal SIGKILL"], "FINISHED"),
                                                (False, ["worker 1 (pid 9) ended with signal SIGKILL"], "FAILED"),
                                                (True, [], "FINISHED"), (False, [], "RUNNING")])
def test_the_parent_run_is_marked_by_its_trials_not_by_a_late_dead_worker(done, dead, status):
    tracker = MemoryTracker()
    run_id = tracker.start_run("t", "study-s", {T.STUDY_ROLE: "study"})
    close_parent_run(tracker, run_id, done, dead)
    assert tracker.runs[run_id].status == status


def test_default_storage_is_a_journal_beside_the_tracking_store(tmp_path, monkeypatch):
    monkeypatch.delenv("APLAB_OPTUNA_STORAGE", raising=False)
    assert default_storage(f"sqlite:///{tmp_path}/db/mlflow.db", "w") == str(tmp_path / "db" / "optuna.journal")
    assert default_storage("http://mlflow:5000", tmp_path / "w") == str(tmp_path / "w" / "optuna.journal")
    monkeypatch.setenv("APLAB_OPTUNA_STORAGE", "postgresql+psycopg://h/optuna")
    assert default_storage(f"sqlite:///{tmp_path}/mlflow.db", "w") == "postgresql+psycopg://h/optuna"


def test_objectives_read_only_validation_accuracy():
    history = [{"val/acc": 0.5, "test/acc": 0.9}, {"val/acc": 0.7, "test/acc": 0.1}, {"val/acc": 0.6, "test/acc": 1.0}]
    assert OBJECTIVES.get("last")(history) == 0.6
    assert OBJECTIVES.get("best")(history) == 0.7


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_three_workers_run_the_paper_grid_once_each_under_one_parent_run(tmp_path):
    assert main(study_argv(tmp_path, PAPER_GRID, "--workers", "3")) == 0
    trials = load_study(tmp_path).get_trials()
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    assert {point(t) for t in trials} == PAPER_POINTS
    assert all(ATTR_OWNER in t.user_attrs for t in trials)  # each ran in a worker that recorded itself
    assert load_study(tmp_path).metric_names == ["val/acc"]  # optuna-dashboard names the objective
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parents = tracker.find_runs("aplab", {T.STUDY_ROLE: "study"})
    assert len(parents) == 1 and parents[0].status == "FINISHED"
    children = tracker.find_runs("aplab", {"mlflow.parentRunId": parents[0].run_id})
    assert len(children) == 12
    assert sorted(int(r.tags[T.TRIAL_NUMBER]) for r in children) == list(range(12))
    assert all(r.status == "FINISHED" and r.tags[T.TRIAL_STATE] == "COMPLETE" for r in children)
    by_number = {t.number: t for t in trials}
    for run in children:  # the objective is the last epoch's val/acc of that very run
        assert math.isclose(run.metrics["val/acc"], by_number[int(run.tags[T.TRIAL_NUMBER])].value, rel_tol=1e-9)
    best = max(trials, key=lambda t: t.value)
    assert parents[0].tags["best.trial"] == str(best.number)
    study_dir = next((tmp_path / "runs" / "aplab").glob("study-*"))
    assert len((study_dir / "trials.csv").read_text().strip().splitlines()) == 13
    assert (study_dir / "heatmap_val_acc.png").stat().st_size > 0
    assert list(tmp_path.glob(f"mlartifacts/**/{parents[0].run_id}/artifacts/study/heatmap_val_acc.png"))


# A worker that SIGKILLs itself inside trial 2, after its first epoch (its child run exists then):
# the kill lands at one known point, with no storage call in flight.
KILLED_TRIAL = 2
DIE_IN_TRIAL = f"""
import os, signal, sys
import aplab.study.objective as objective
from aplab.cli import main

report = objective.EpochReporter.__call__

def die_in_trial(self, epoch, metrics):
    if self.trial.number == {KILLED_TRIAL}:
        os.kill(os.getpid(), signal.SIGKILL)
    return report(self, epoch, metrics)

objective.EpochReporter.__call__ = die_in_trial
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_resumed_without_repeating_a_point(tmp_path):
    argv = study_argv(tmp_path, PAPER_GRID)
    killed = subprocess.run([sys.executable, "-c", DIE_IN_TRIAL, *argv], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9
    before = load_study(tmp_path).get_trials()
    assert [t.state for t in before[:KILLED_TRIAL + 1]] == [TrialState.COMPLETE] * KILLED_TRIAL + [TrialState.RUNNING]

    assert main(argv) == 0  # the same command again
    trials = load_study(tmp_path).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 12 and {point(t) for t in complete} == PAPER_POINTS  # 12 distinct points
    assert trials[KILLED_TRIAL].state == TrialState.FAIL and len(trials) == 13
    assert "died" in retried(trials)[KILLED_TRIAL]
    (replacement,) = [t for t in trials if ATTR_RETRY_REASON in t.user_attrs]
    assert point(replacement) == point(before[KILLED_TRIAL])
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (dead_run,) = tracker.find_runs("aplab", {T.TRIAL_NUMBER: str(KILLED_TRIAL), T.STUDY_ROLE: "trial"})
    assert dead_run.status == "FAILED" and "died" in dead_run.tags[T.FAILURE_REASON]
    (parent,) = tracker.find_runs("aplab", {T.STUDY_ROLE: "study"})
    assert parent.status == "FINISHED"


def test_a_nan_trial_fails_with_its_reason_the_study_goes_on_and_refit_uses_the_best(tmp_path):
    space = write(tmp_path / "lr.yaml", "grid:\n  optim.lr: [1.0e+30, 0.05]\n")
    tracker = MemoryTracker()
    report = run_study(StudyOptions(str(space), base_config(**{"tracking.workdir": str(tmp_path / "runs")}),
                                    study_name="nan", storage=str(tmp_path / "j.journal"), refit=True,
                                    progress=False), tracker=tracker)
    trials = optuna.load_study(study_name="nan", storage=open_storage(str(tmp_path / "j.journal"))).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].params["optim.lr"] == 1e30 and "loss is nan" in trials[0].user_attrs["failure_reason"]
    assert retried(trials) == {}  # a NaN is the point's fault: not run again
    runs = {r.tags.get(T.TRIAL_NUMBER): r for r in tracker.find_runs("t", {T.STUDY_ROLE: "trial"})}
    assert runs["0"].status == "FAILED" and "nan" in runs["0"].tags["failure_reason"].lower()
    assert runs["0"].tags[T.TRIAL_STATE] == "FAIL" and runs["1"].status == "FINISHED"
    assert report.done and report.exit_code == 0
    (refit,) = tracker.find_runs("t", {T.STUDY_ROLE: "refit"})
    assert refit.params["optim.lr"] == "0.05" and refit.params["data.val_fraction"] == "0.0"
    assert "val/acc" not in refit.metrics  # trained on the full noisy training set
    parent = tracker.runs[report.job.context.parent_run_id]
    assert parent.metrics["refit/test_acc"][-1][1] == refit.metrics["test/acc_last"] == report.refit_test_acc


def test_the_median_pruner_stops_a_hopeless_trial_and_its_run_ends_killed(tmp_path):
    space = write(tmp_path / "prune.yaml", "grid:\n  optim.lr: [0.05, 1.0e-6]\n"
                  "pruner: {name: median, n_startup_trials: 1, n_warmup_steps: 0}\n")
    tracker = MemoryTracker()
    run_study(StudyOptions(str(space), base_config(**{"optim.epochs": 3, "noise.spec": "none",
                                                      "tracking.workdir": str(tmp_path / "runs")}),
                           study_name="p", storage=str(tmp_path / "j.journal"), progress=False), tracker=tracker)
    good, hopeless = optuna.load_study(study_name="p", storage=open_storage(str(tmp_path / "j.journal"))).get_trials()
    assert good.state == TrialState.COMPLETE and hopeless.state == TrialState.PRUNED
    # The median rule with one finished trial: pruned at the first epoch whose value is below that trial's.
    epoch = min(hopeless.intermediate_values)
    assert hopeless.intermediate_values[epoch] < good.intermediate_values[epoch]
    assert list(hopeless.intermediate_values) == [1]
    runs = {r.tags.get(T.TRIAL_NUMBER): r for r in tracker.find_runs("t", {T.STUDY_ROLE: "trial"})}
    assert runs["1"].status == "KILLED" and runs["1"].tags[T.TRIAL_STATE] == "PRUNED"
    assert runs["1"].tags["pruned_at_epoch"] == "1" and runs["0"].status == "FINISHED"


@pytest.mark.slow
def test_distributed_trials_report_their_epochs_and_are_pruned_across_the_ranks(tmp_path):
    """Trials of runtime.nproc_per_node = 2 (gloo here): rank 0's epochs reach the pruner in the worker."""
    space = write(tmp_path / "prune.yaml", "grid:\n  optim.lr: [0.05, 1.0e-6]\n"
                  "pruner: {name: median, n_startup_trials: 1, n_warmup_steps: 0}\n")
    assert main(study_argv(tmp_path, space, "--epochs", "3", "--noise", "none", "--set", "runtime.nproc_per_node=2",
                           "--set", "tracking.system_metrics=false")) == 0
    good, hopeless = load_study(tmp_path).get_trials()
    assert good.state == TrialState.COMPLETE and list(good.intermediate_values) == [1, 2, 3]
    assert hopeless.state == TrialState.PRUNED and list(hopeless.intermediate_values) == [1]
    runs = {r.tags.get(T.TRIAL_NUMBER): r for r in make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}").find_runs(
        "aplab", {T.STUDY_ROLE: "trial"})}
    assert {r.tags[T.WORLD_SIZE] for r in runs.values()} == {"2"}
    assert runs["0"].status == "FINISHED" and runs["1"].status == "KILLED" and runs["1"].tags["pruned_at_epoch"] == "1"


def test_tpe_runs_its_budget_of_log_uniform_points(tmp_path):
    tracker = MemoryTracker()
    report = run_study(StudyOptions(str(TPE_SPACE), base_config(**{"tracking.workdir": str(tmp_path / "runs")}),
                                    study_name="tpe", storage=str(tmp_path / "j.journal"), n_trials=2,
                                    progress=False), tracker=tracker)
    trials = optuna.load_study(study_name="tpe", storage=open_storage(str(tmp_path / "j.journal"))).get_trials()
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials) and report.done
    assert len({point(t) for t in trials}) == 2
    assert all(0.01 <= v <= 100 for t in trials for v in point(t))
    assert len(tracker.find_runs("t", {T.STUDY_ROLE: "trial"})) == 2
    assert "tpe" in tracker.descriptions["t"] and "child run per Optuna trial" in tracker.descriptions["t"]
