"""state.json as ``RunState``: the keys run folders hold stay readable, and a run folder round-trips."""

from __future__ import annotations

import json

import pytest

from aplab.errors import RunFileCorrupt
from aplab.status import RunStatus
from aplab.train.recorder import STATE_FILE, RunRecorder

#: A state.json as aplab wrote it before RunState (keys spelled out here, not taken from the dataclass).
OLD_STATE = {
    "config_hash": "26d7a4ae67b04155", "tracking_uri": "sqlite:////tmp/mlflow.db", "experiment": "e",
    "run_name": "digits-ce-none-s0", "parent_run_id": None, "run_id": "abc", "status": "FINISHED",
    "tags": {"dataset": "digits"}, "params": {"optim.lr": 0.01},
    "dataset": {"name": "digits-train-none", "digest": "d", "source": "aplab:digits", "size": 1000},
    "history": [{"epoch": 1, "train/loss": 2.0}, {"epoch": 2, "train/loss": 1.5}], "synced_step": 2,
    "summary": {"test/acc_last": 0.5}, "end_tags": {}, "artifacts_synced": True, "end_synced": True,
}


def test_a_state_json_of_the_old_shape_loads_with_every_key(tmp_path) -> None:
    (tmp_path / STATE_FILE).write_text(json.dumps(OLD_STATE))
    state = RunRecorder.load(tmp_path, None).state
    assert state.status is RunStatus.FINISHED
    assert (state.run_id, state.synced_step, state.last_epoch, state.summary) == ("abc", 2, 2, {"test/acc_last": 0.5})
    assert state.dataset_records == [OLD_STATE["dataset"]]  # older folders: the training set only


def test_saving_keeps_the_key_names(tmp_path) -> None:
    (tmp_path / STATE_FILE).write_text(json.dumps(OLD_STATE))
    RunRecorder.load(tmp_path, None).save()
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert set(OLD_STATE) <= set(saved)
    assert {k: saved[k] for k in OLD_STATE} == OLD_STATE


@pytest.mark.parametrize("text", ['{"config_hash": "x"}', "[1, 2]", '{"status": "DONE"}'])
def test_a_state_json_missing_its_keys_is_a_corrupt_run_file(tmp_path, text) -> None:
    (tmp_path / STATE_FILE).write_text(text)
    with pytest.raises(RunFileCorrupt):
        RunRecorder.load(tmp_path, None)
