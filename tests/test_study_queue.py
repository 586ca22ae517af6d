"""The study's trial queue (aplab.study.queue) on each storage a study can live in: an Optuna journal,
SQLite and PostgreSQL (the last needs the native stack: marker `stack`). Grid points are queued
once, a dead worker's trial is failed and its point queued once more, the budget counts the
replacement instead of the failure, and processes claiming at once never share a trial."""

from __future__ import annotations

import datetime
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from aplab.processes import process_start
from aplab.study.queue import (ATTR_HEARTBEAT, ATTR_OWNER, ATTR_RETRY_OF, ATTR_RETRY_REASON, budget_used, claim_trial,
                               enqueue_grid, fail_for_retry, is_done, mark_owner, point_of, retried,
                               stale_reason, stale_trials)
from aplab.study.space_file import load_space
from aplab.study.storage import open_storage, storage_lock

pytest_plugins = ["tests.stack"]  # the PostgreSQL fixture (started only by the tests marked stack)

REPO = Path(__file__).resolve().parents[1]
PAPER_GRID = REPO / "search_spaces" / "apl_paper_grid.yaml"
TPE_SPACE = REPO / "search_spaces" / "apl_tpe.yaml"
# The paper's Figure 5 grid, written out independently of the space file.
PAPER_POINTS = {(a, b) for a in (0.1, 1.0, 10.0) for b in (0.1, 1.0, 10.0, 100.0)}

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(params=["journal", "sqlite", pytest.param("postgresql", marks=pytest.mark.stack)])
def storage_url(request, tmp_path) -> str:
    if request.param == "journal":
        return str(tmp_path / "optuna.journal")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    return request.getfixturevalue("optuna_storage")


def new_study(url: str) -> optuna.Study:
    name = f"q-{uuid.uuid4().hex[:8]}"  # PostgreSQL's database is shared by the session
    return optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize")


def pair(point: dict) -> tuple[float, float]:
    return (float(point["loss.alpha"]), float(point["loss.beta"]))


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_grid_points_are_queued_once_and_a_failed_for_retry_point_once_more(storage_url):
    space = load_space(PAPER_GRID)
    study = new_study(storage_url)
    assert enqueue_grid(study, space) == 12 and enqueue_grid(study, space) == 0
    first = claim_trial(study, space, None)
    assert fail_for_retry(study, first, "worker died") is True
    assert fail_for_retry(study, first, "worker died") is False  # already FAIL: not queued twice
    assert enqueue_grid(study, space) == 0  # the replacement covers the point
    trials = study.get_trials()
    assert retried(trials) == {first.number: "worker died"} and len(trials) == 13
    claimed = [claim_trial(study, space, None) for _ in range(13)]
    assert claimed[-1] is None  # a grid never creates trials of its own
    numbers = [t.number for t in claimed[:-1]]
    assert len(set(numbers)) == 12 and first.number not in numbers
    points = [pair(point_of(t)) for t in study.get_trials() if t.number in numbers]
    assert set(points) == PAPER_POINTS and len(points) == 12


def test_a_trial_finished_by_its_worker_is_not_failed_nor_queued_again(storage_url):
    space = load_space(PAPER_GRID)
    study = new_study(storage_url)
    enqueue_grid(study, space)
    trial = claim_trial(study, space, None)
    study.tell(trial, 0.5)
    assert fail_for_retry(study, trial, "late heartbeat") is False
    assert study.get_trials()[trial.number].state == TrialState.COMPLETE and len(study.get_trials()) == 12


def test_a_sampled_space_creates_trials_until_its_budget_counting_a_replacement_once(storage_url):
    space = load_space(TPE_SPACE)
    study = new_study(storage_url)
    first = claim_trial(study, space, 2)
    first.suggest_float("loss.alpha", 0.01, 100, log=True)
    first.suggest_float("loss.beta", 0.01, 100, log=True)
    assert fail_for_retry(study, first, "worker died")
    again = claim_trial(study, space, 2)  # the replacement, with the failed trial's point
    assert again.user_attrs[ATTR_RETRY_OF] == first.number
    assert again.suggest_float("loss.alpha", 0.01, 100, log=True) == first.params["loss.alpha"]
    study.tell(again, 0.1)
    other = claim_trial(study, space, 2)
    assert other is not None and other.number not in (first.number, again.number)
    study.tell(other, 0.2)
    assert claim_trial(study, space, 2) is None
    trials = study.get_trials()
    assert len(trials) == 3 and budget_used(trials) == 2 and is_done(study, space, 2)


def test_only_the_trials_of_dead_workers_are_stale(storage_url):
    space = load_space(PAPER_GRID)
    study = new_study(storage_url)
    enqueue_grid(study, space)
    alive, dead, silent = (claim_trial(study, space, None) for _ in range(3))
    mark_owner(alive)  # this very process
    dead.set_user_attr(ATTR_OWNER, {"host": socket.gethostname(), "pid": dead_pid(), "pid_start": 1.0})
    silent.set_user_attr(ATTR_OWNER, {"host": "another-host", "pid": 12, "pid_start": 1.0})
    silent.set_user_attr(ATTR_HEARTBEAT, time.time() - 700)
    found = {trial.number: reason for trial, reason in stale_trials(study, 600)}
    assert set(found) == {dead.number, silent.number}
    assert "died" in found[dead.number] and "no heartbeat" in found[silent.number]
    for trial, reason in stale_trials(study, 600):
        assert fail_for_retry(study, trial, reason)
    trials = study.get_trials()
    assert {t.number for t in trials if t.state == TrialState.RUNNING} == {alive.number}
    replacements = {t.user_attrs[ATTR_RETRY_OF]: t for t in trials if ATTR_RETRY_OF in t.user_attrs}
    assert set(replacements) == {dead.number, silent.number}
    assert all(t.state == TrialState.WAITING for t in replacements.values())
    assert "died" in replacements[dead.number].user_attrs[ATTR_RETRY_REASON]
    assert point_of(replacements[dead.number]) == point_of(trials[dead.number])
    assert stale_trials(study, 600) == []


def _claim_all(url: str, name: str, results) -> None:
    """A worker process: claim grid trials under the lock until none is left, finish each at once."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(PAPER_GRID)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    while True:
        with storage_lock(url, name):
            trial = claim_trial(study, space, None)
        if trial is None:
            return
        study.tell(trial, 0.0)
        results.put((os.getpid(), trial.number))


def test_processes_claiming_at_once_never_share_a_trial(storage_url):
    space = load_space(PAPER_GRID)
    study = new_study(storage_url)
    enqueue_grid(study, space)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_claim_all, args=(storage_url, study.study_name, results)) for _ in range(3)]
    for worker in workers:
        worker.start()
    claims = [results.get(timeout=300) for _ in range(12)]
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert sorted(number for _, number in claims) == list(range(12))
    trials = study.get_trials()
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    assert {pair(point_of(t)) for t in trials} == PAPER_POINTS


def test_the_owner_records_this_process_so_it_is_not_stale(storage_url):
    study = new_study(storage_url)
    trial = study.ask()
    mark_owner(trial)
    owner = study.get_trials()[0].user_attrs[ATTR_OWNER]
    assert owner["pid"] == os.getpid() and owner["pid_start"] == pytest.approx(process_start(os.getpid()))
    assert stale_trials(study, 0.0) == []  # alive on this host: the heartbeat's age does not matter


def running_trial(user_attrs: dict, started: float) -> FrozenTrial:
    return FrozenTrial(number=7, state=TrialState.RUNNING, value=None,
                       datetime_start=datetime.datetime.fromtimestamp(started), datetime_complete=None, params={},
                       distributions={}, user_attrs=user_attrs, system_attrs={}, intermediate_values={}, trial_id=7)


def test_a_reused_pid_or_a_trial_without_owner_is_stale_by_its_age():
    me, now = os.getpid(), time.time()
    owner = {"host": socket.gethostname(), "pid": me, "pid_start": process_start(me)}
    assert stale_reason(running_trial({ATTR_OWNER: owner}, now - 1e4), 600) is None
    reused = {**owner, "pid_start": owner["pid_start"] - 50}  # same pid, another process
    assert "died" in stale_reason(running_trial({ATTR_OWNER: reused}, now), 600)
    assert stale_reason(running_trial({}, now - 30), 600) is None
    assert "no heartbeat" in stale_reason(running_trial({}, now - 700), 600)


def test_a_grid_queued_by_an_older_aplab_is_not_queued_twice(storage_url):
    space = load_space(PAPER_GRID)
    study = new_study(storage_url)
    for point in space.points()[:5]:  # how aplab queued points before it recorded aplab.point
        study.enqueue_trial(point)
    assert enqueue_grid(study, space) == 7
    assert {pair(point_of(t)) for t in study.get_trials()} == PAPER_POINTS and len(study.get_trials()) == 12


# ----------------------------------------------------------------------------- what aplab uses of Optuna


def test_enqueued_params_reads_what_enqueue_trial_recorded():
    from aplab.study.optuna_adapter import enqueued_params

    study = optuna.create_study()
    study.enqueue_trial({"loss.alpha": 10.0, "loss.beta": 0.1})
    study.ask()  # takes the queued trial
    study.ask()  # a trial that was never enqueued
    queued, drawn = study.get_trials()
    assert enqueued_params(queued) == {"loss.alpha": 10.0, "loss.beta": 0.1}
    assert enqueued_params(drawn) == {}


def test_a_sampler_set_after_ask_draws_the_asked_trials_values():
    from aplab.study.optuna_adapter import use_sampler

    def first_draw(seed: int) -> float:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1000 + seed))
        trial = study.ask()
        use_sampler(study, optuna.samplers.RandomSampler(seed=seed))
        return trial.suggest_float("x", 0.0, 1.0)

    expected = optuna.samplers.RandomSampler(seed=7)  # what a study made with that sampler draws first
    alone = optuna.create_study(sampler=expected).ask().suggest_float("x", 0.0, 1.0)
    assert first_draw(7) == alone != first_draw(8)


def test_tell_unless_finished_tells_a_running_trial_and_not_one_another_process_finished():
    from aplab.study.optuna_adapter import tell_unless_finished

    study = optuna.create_study(direction="maximize")
    running, failed_meanwhile = study.ask(), study.ask()
    study.tell(failed_meanwhile.number, state=TrialState.FAIL)  # the other command's stale recovery
    assert tell_unless_finished(study, running, 0.5, "COMPLETE") is True
    assert tell_unless_finished(study, failed_meanwhile, 0.9, "COMPLETE") is False
    states = [(t.state, t.value) for t in study.get_trials()]
    assert states == [(TrialState.COMPLETE, 0.5), (TrialState.FAIL, None)]


def test_tell_unless_finished_raises_what_is_not_a_lost_race():
    from aplab.study.optuna_adapter import tell_unless_finished

    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError):
        tell_unless_finished(study, trial, None, "WAITING")  # not a state a trial can be told
    assert study.get_trials()[0].state == TrialState.RUNNING
