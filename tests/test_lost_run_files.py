"""Run files lost or damaged around a kill (issue 22, items 3 and 4): the store keeps one run per config, never a
second FINISHED one nor a RUNNING zombie."""

from __future__ import annotations

from pathlib import Path

import pytest

from aplab.errors import RunFileCorrupt
from aplab.keys import M, T
from aplab.status import RunStatus
from aplab.tracking import MemoryTracker
from aplab.train import train
from aplab.train.sync import sync


class Killed(BaseException):
    """A SIGKILL at a chosen line: nothing after it runs (not an Exception, so no handler catches it)."""


class KilledAfterCreatingARun(MemoryTracker):
    """A store whose first ``start_run`` creates the run, then the process dies before it hears the id."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = True

    def start_run(self, *args, **kwargs):
        run_id = super().start_run(*args, **kwargs)
        if self.armed:
            self.armed = False
            raise Killed
        return run_id


def statuses(tracker: MemoryTracker) -> list[str]:
    return sorted(str(run.status) for run in tracker.runs.values())


def interrupted_at(epoch):
    def interrupt(done, metrics):
        if done == epoch:
            raise KeyboardInterrupt

    return interrupt


@pytest.mark.parametrize("damage", ["truncated", "deleted", "a list", "empty object"])
def test_a_finished_run_whose_state_file_is_damaged_is_recovered_from_the_store_not_trained_twice(small_run, damage):
    tracker = MemoryTracker()
    cfg = small_run(**{"optim.epochs": 2})
    first = train(cfg, tracker=tracker, progress=False)
    state = first.run_dir / "state.json"
    {"truncated": lambda: state.write_bytes(state.read_bytes()[:50]), "deleted": state.unlink,
     "a list": lambda: state.write_text("[1, 2]"), "empty object": lambda: state.write_text("{}")}[damage]()
    trained = []
    again = train(cfg, tracker=tracker, progress=False, on_epoch=lambda epoch, metrics: trained.append(epoch))
    assert trained == [] and again.status == RunStatus.SKIPPED and again.run_id == first.run_id
    assert statuses(tracker) == ["FINISHED"]
    assert again.summary == first.summary and again.history == first.history
    assert train(cfg, tracker=tracker, progress=False).status == RunStatus.SKIPPED  # the rebuilt state holds
    assert len(tracker.runs) == 1


@pytest.mark.parametrize("damage", ["deleted", "empty object"])
def test_a_killed_run_whose_state_file_is_lost_leaves_no_run_running(small_run, damage):
    tracker = MemoryTracker()
    cfg = small_run(**{"optim.epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tracker=tracker, progress=False, on_epoch=interrupted_at(2))
    (first_id,) = tracker.runs
    path = next(Path(cfg.tracking.workdir).rglob("state.json"))
    path.unlink() if damage == "deleted" else path.write_text("{}")
    if damage == "empty object":
        with pytest.raises(RunFileCorrupt):
            train(cfg, tracker=tracker, progress=False)
    again = train(cfg, tracker=tracker, progress=False)
    assert again.status == RunStatus.FINISHED and again.run_id != first_id
    assert tracker.runs[first_id].status == "FAILED" and "state.json" in tracker.runs[first_id].tags[T.FAILURE_REASON]
    assert statuses(tracker) == ["FAILED", "FINISHED"]
    assert [step for step, _ in tracker.metric_history(again.run_id, M.TRAIN_LOSS)] == [1, 2, 3]


def test_a_kill_between_creating_the_tracked_run_and_saving_its_id_leaves_one_run(small_run):
    tracker = KilledAfterCreatingARun()
    cfg = small_run(**{"optim.epochs": 2})
    with pytest.raises(Killed):
        train(cfg, tracker=tracker, progress=False)
    (made,) = tracker.runs
    again = train(cfg, tracker=tracker, progress=False)
    assert again.run_id == made and statuses(tracker) == ["FINISHED"]
    run = tracker.runs[made]
    assert run.params["loss.name"] == "nce+rce" and len(run.datasets) == 3  # what the killed process never sent
    assert [step for step, _ in tracker.metric_history(made, M.TRAIN_LOSS)] == [1, 2]


def test_a_killed_sync_of_an_offline_run_sends_it_once(small_run):
    done = train(small_run(**{"optim.epochs": 2, "tracking.offline": True}), progress=False)
    tracker = KilledAfterCreatingARun()
    with pytest.raises(Killed):
        sync(done.run_dir, tracker)
    synced = sync(done.run_dir, tracker)
    (run_id,) = tracker.runs
    assert synced.run_id == run_id and statuses(tracker) == ["FINISHED"]
    assert [step for step, _ in tracker.metric_history(run_id, M.TRAIN_LOSS)] == [1, 2]
