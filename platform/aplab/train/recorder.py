"""Keeps a run's tracking in step with its local state, through tracking outages.

Every epoch's metrics live in the run folder first (state.json); the recorder pushes the epochs the
server has not seen yet, so an outage delays metrics but never loses or doubles them. ``aplab sync``
replays the same pushes later for runs made offline or finished while the server was away.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

from ..errors import RunFileCorrupt
from ..keys import M, T
from ..tracking import DatasetRecord, Tracker
from .checkpoint import read_json, write_json
from .state import RunState

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
MODEL_FILE = "model.pt"  # the final model, delivered to the tracker as a LoggedModel with the artifacts
SENTINEL_METRIC = M.TRAIN_LOSS  # logged every epoch; its history tells which epochs reached the server


class RunRecorder:
    """Local state of one run (state.json) plus best-effort pushes to its tracker."""

    def __init__(self, run_dir: Path, tracker: Tracker | None, state: RunState):
        self.run_dir = run_dir
        self.tracker = tracker
        self.state = state
        self._warned = False

    @classmethod
    def load(cls, run_dir: Path, tracker: Tracker | None) -> RunRecorder | None:
        """The run folder's recorder, None when it has no state.json; RunFileCorrupt when that is unreadable."""
        path = run_dir / STATE_FILE
        try:
            data = read_json(path)
            state = RunState.from_json(data) if data is not None else None
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError) as err:
            raise RunFileCorrupt(path, f"truncated or corrupt: {type(err).__name__}: {err}",
                                 "run the same `aplab train` command again: it marks the run FAILED in the "
                                 "tracker and trains it again from scratch") from err
        return cls(run_dir, tracker, state) if state is not None else None

    @property
    def run_id(self) -> str | None:
        return self.state.run_id

    def save(self) -> None:
        write_json(self.run_dir / STATE_FILE, self.state.to_json())

    def attempt(self, what: str, call) -> bool:
        """Run a tracker call; on failure warn once and return False (an outage never stops training)."""
        if self.tracker is None:
            return False
        try:
            call()
        except Exception as err:  # an outage must never cost the training run
            if not self._warned:
                log.warning("tracking unavailable (%s: %s); training goes on, metrics are kept in the run "
                            "folder and sent when it is back", type(err).__name__, " ".join(str(err).split())[:120])
                self._warned = True
            return False
        if self._warned:  # only a tracker call that went through says the server is back
            log.info("tracking server is back; %s delivered", what)
            self._warned = False
        return True

    def fetch(self, what: str, call) -> tuple[bool, Any]:
        """A tracker call that answers: (True, its answer), or (False, None) during an outage (warned once)."""
        answers: list[Any] = []
        delivered = self.attempt(what, lambda: answers.append(call()))
        return delivered, answers[0] if delivered else None

    def forget_lost_run(self) -> bool:
        """When the store no longer holds this run (deleted or replaced), forget it so that the next push
        creates it again with every epoch, artifact and the final status; True when it was lost."""
        if self.run_id is None or self.tracker is None:
            return False
        reached, held = self.fetch("run lookup", lambda: self.tracker.has_run(self.run_id))
        if not reached or held:
            return False
        log.warning("run %s is not in %s (store deleted or replaced): it is created there again with all its "
                    "epochs and artifacts", self.run_id, self.tracker.uri)
        state = self.state
        state.run_id, state.synced_step, state.artifacts_synced, state.end_synced = None, 0, False, False
        return True

    def ensure_run(self) -> bool:
        """Create the tracked run (params, tags, dataset input) if it does not exist yet; False during an outage."""
        if self.run_id is not None:
            return True
        if self.tracker is None:
            return False
        state, tracker = self.state, self.tracker
        key = state.tags.setdefault(T.RUN_KEY, uuid.uuid4().hex)
        self.save()  # the key is on disk before the run exists: a kill after its creation cannot leave a zombie

        def create() -> None:
            made = tracker.find_runs(state.experiment, {T.RUN_KEY: key})  # created before a kill, id never saved
            run_id = made[0].run_id if made else tracker.start_run(state.experiment, state.run_name, state.tags,
                                                                   state.parent_run_id)
            if made:  # the epochs it received before the kill are not sent again
                state.synced_step = max((step for step, _ in tracker.metric_history(run_id, SENTINEL_METRIC)),
                                        default=0)
            tracker.log_params(run_id, state.params)  # both idempotent: a run found again gets what it lacks
            for record in state.dataset_records:  # training, validation and test sets
                tracker.log_dataset(run_id, DatasetRecord(**record))
            state.run_id = run_id

        return self.attempt("run creation", create)

    def reconcile(self) -> None:
        """After a crash, ask the server which epochs it has, so none is sent twice."""
        if self.run_id is None or self.tracker is None:
            return
        reached, history = self.fetch("history", lambda: self.tracker.metric_history(self.run_id, SENTINEL_METRIC))
        if reached:
            self.state.synced_step = max((step for step, _ in history), default=0)

    def push_pending(self) -> bool:
        """Send every recorded epoch after ``synced_step``; True when the server is up to date."""
        if self.run_id is None:
            return False
        pending = [(row["epoch"], {k: v for k, v in row.items() if k != "epoch"})
                   for row in self.state.history if row["epoch"] > self.state.synced_step]
        if not pending:
            return True
        if self.attempt(f"epochs {pending[0][0]}-{pending[-1][0]}", lambda: self.tracker.log_metrics(self.run_id, pending)):
            self.state.synced_step = pending[-1][0]
            return True
        return False

    def push_artifacts(self) -> bool:
        """Upload the run's artifact folder and its final model (a LoggedModel) once; remembered in the state."""
        if self.state.artifacts_synced or self.run_id is None:
            return self.state.artifacts_synced
        folder = self.run_dir / "artifacts"
        model_file = self.run_dir / MODEL_FILE

        def upload() -> None:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                parent = path.parent.relative_to(folder).as_posix()
                self.tracker.log_artifact(self.run_id, path, None if parent == "." else parent)
            if model_file.exists():
                import torch

                model = torch.load(model_file, map_location="cpu", weights_only=False)  # aplab's own file
                self.tracker.log_model(self.run_id, model, name="model")

        self.state.artifacts_synced = self.attempt("artifacts", upload)
        return self.state.artifacts_synced

    def push_end(self) -> bool:
        """Final metrics, tags and status, once the epochs and artifacts are through."""
        if self.state.end_synced or self.run_id is None:
            return self.state.end_synced
        status, summary, last_epoch = self.state.status, self.state.summary, self.state.last_epoch

        def finish() -> None:
            if summary:
                self.tracker.log_metrics(self.run_id, [(last_epoch, summary)])
            self.tracker.set_tags(self.run_id, self.state.end_tags)
            self.tracker.end_run(self.run_id, status)

        self.state.end_synced = self.attempt("final status", finish)
        return self.state.end_synced
