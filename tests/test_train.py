"""Training runs end to end on the embedded digits: what is logged, determinism, resume, failures."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from aplab.cli import main
from aplab.tracking import MemoryTracker
from aplab.train import NonFiniteLoss, train

TIMING = {"time/epoch_s", "time/images_per_s"}


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def test_a_run_logs_params_tags_metrics_artifacts_and_its_dataset(small_run):
    tracker = MemoryTracker()
    result = train(small_run(), tracker=tracker, progress=False)
    assert result.status == "FINISHED"
    run = tracker.runs[result.run_id]
    assert run.status == "FINISHED"
    assert run.params["loss.name"] == "nce+rce" and run.params["loss.alpha"] == "1.0"
    assert run.params["optim.lr"] == "0.05" and "noise.realised_rate" in run.params
    for tag in ("dataset", "model", "loss", "noise", "seed", "fidelity", "config_hash", "code_version"):
        assert tag in run.tags
    assert run.tags["config_hash"] == result.config_hash and run.tags["fidelity"] == "code"
    for key in ("train/loss", "train/acc_noisy", "train/acc_clean", "train/memorised", "train/corrected",
                "val/loss", "val/acc", "test/loss", "test/acc", "lr", "time/epoch_s", "time/images_per_s"):
        assert [step for step, _ in run.metrics[key]] == [1, 2], key
    assert run.metrics["test/acc_last"][0][1] == run.metrics["test/acc"][-1][1]
    for artifact in ("config.yaml", "transition.csv", "transition.png", "metrics.csv", "curves.png",
                     "confusion.png", "model/state_dict.pt"):
        assert artifact in run.artifacts, artifact
    transition = np.loadtxt(run.artifacts["transition.csv"], delimiter=",")
    np.testing.assert_allclose(transition.sum(axis=1), 1.0, atol=1e-5)
    assert np.diag(transition).mean() == pytest.approx(0.6, abs=0.01)
    (dataset,) = run.datasets
    from aplab.resolution import resolve
    from aplab.train.prepare import prepare_data

    labels = prepare_data(resolve(small_run())).noisy.labels
    assert dataset.digest == hashlib.sha256(labels.tobytes()).hexdigest()[:16]


def test_memorisation_is_measured_on_the_flipped_samples(small_run):
    result = train(small_run(**{"loss.name": "ce", "noise.spec": "symmetric:0.8", "optim.epochs": 30}),
                   tracker=MemoryTracker(), progress=False)
    last = result.history[-1]
    # CE under 80% noise fits the wrong labels of the flipped samples far above chance (1/9 of wrong classes)
    assert last["train/memorised"] > 0.3
    assert last["train/memorised"] + last["train/corrected"] <= 1.0


def test_the_same_command_gives_bit_identical_metrics_on_cpu(small_run, tmp_path):
    first = train(small_run(), tracker=MemoryTracker(), progress=False)
    second = train(small_run(**{"tracking.workdir": str(tmp_path / "again")}), tracker=MemoryTracker(), progress=False)
    assert without_timing(first.history) == without_timing(second.history)
    other = train(small_run(**{"runtime.seed": 1}), tracker=MemoryTracker(), progress=False)
    assert without_timing(other.history) != without_timing(first.history)


def test_a_finished_run_is_not_run_again(small_run):
    tracker = MemoryTracker()
    first = train(small_run(), tracker=tracker, progress=False)
    again = train(small_run(), tracker=tracker, progress=False)
    assert again.status == "SKIPPED" and again.run_id == first.run_id and len(tracker.runs) == 1


def test_a_nan_loss_fails_the_run_with_the_reason_as_a_tag(small_run):
    tracker = MemoryTracker()
    cfg = small_run(**{"loss.name": "ce", "optim.lr": 1e30, "optim.grad_clip": 0.0})
    with pytest.raises(NonFiniteLoss):
        train(cfg, tracker=tracker, progress=False)
    (run,) = tracker.runs.values()
    assert run.status == "FAILED" and "loss is" in run.tags["failure_reason"]


def test_a_tracking_outage_delays_metrics_but_loses_or_doubles_none(small_run):
    tracker = MemoryTracker()

    def outage(epoch, metrics):
        tracker.fail = epoch in (2, 3)  # down after epoch 2's push attempt... back after epoch 3

    result = train(small_run(**{"optim.epochs": 5}), tracker=tracker, progress=False, on_epoch=outage)
    run = tracker.runs[result.run_id]
    assert [step for step, _ in run.metrics["train/loss"]] == [1, 2, 3, 4, 5]
    assert run.status == "FINISHED" and "curves.png" in run.artifacts


def test_an_offline_run_is_synced_later(small_run):
    from aplab.train import sync

    result = train(small_run(**{"tracking.offline": True}), progress=False)
    assert result.run_id is None and result.status == "FINISHED"
    tracker = MemoryTracker()
    synced = sync(result.run_dir, tracker)
    run = tracker.runs[synced.run_id]
    assert [step for step, _ in run.metrics["test/acc"]] == [1, 2]
    assert run.status == "FINISHED" and "model/state_dict.pt" in run.artifacts
    assert sync(result.run_dir, tracker).run_id == synced.run_id and len(tracker.runs) == 1


def aplab(*args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
    return [sys.executable, "-m", "aplab.cli", *args], env


TRAIN = ["train", "--dataset", "digits", "--loss", "nce+rce", "--noise", "symmetric:0.4", "--epochs", "6",
         "--no-progress", "--set", "tracking.system_metrics=false", "--set", "optim.batch_size=16"]  # ~0.5 s/epoch


@pytest.mark.slow
def test_a_killed_run_resumes_into_the_same_mlflow_run_with_the_same_result(tmp_path):
    from aplab.tracking import make_tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command, env = aplab(*TRAIN, "--tracking-uri", uri, "--workdir", str(tmp_path / "runs"), cwd=tmp_path)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = None
    deadline = time.time() + 240
    while time.time() < deadline:
        states = list((tmp_path / "runs").rglob("state.json"))
        if states and '"epoch": 3' in states[0].read_text():
            state = states[0]
            break
        time.sleep(0.05)
    assert state is not None, process.communicate()[0]
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    straight_cmd, _ = aplab(*TRAIN, "--tracking-uri", uri, "--workdir", str(tmp_path / "straight"),
                            "--experiment", "straight", cwd=tmp_path)
    straight = subprocess.run(straight_cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr

    tracker = make_tracker(uri)
    (killed,) = tracker.find_runs("aplab")
    (clean,) = tracker.find_runs("straight")
    assert killed.status == "FINISHED"
    history = tracker.metric_history(killed.run_id, "train/loss")
    assert sorted(step for step, _ in history) == [1, 2, 3, 4, 5, 6]  # no epoch missing or doubled
    for key in ("test/acc", "val/acc", "train/loss", "test/acc_last"):
        assert killed.metrics[key] == clean.metrics[key], key


@pytest.mark.parametrize("args, message", [
    (["--dataset", "cifar11"], "data.name='cifar11'"),
    (["--model", "cnn5"], "model.name='cnn5'"),
    (["--loss", "nce+rcee"], "loss.name='nce+rcee'"),
    (["--set", "optim.lrr=0.1"], "config key='optim.lrr'"),
    (["--dataset", "webvision_mini", "--data-dir", "/nonexistent/webvision"], "data.data_dir="),
    (["--tracking-uri", "http://127.0.0.1:9"], "unreachable"),
])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing_behind(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    start = time.time()
    code = main(["train", "--no-progress", "--workdir", str(tmp_path / "runs"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("aplab: error:") and message in err and "\n" not in err
    assert time.time() - start < 10
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "mlflow.db").exists() or "tracking" not in message


def test_malformed_yaml_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: {name: nce+rce\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "config file=" in capsys.readouterr().err


def test_sync_refuses_to_claim_a_run_that_lives_in_another_store(small_run):
    from aplab.train import sync
    from aplab.train.run import RunOfAnotherStore

    home = MemoryTracker()
    result = train(small_run(), tracker=home, progress=False)
    other = MemoryTracker()
    other.uri = "memory://other"
    with pytest.raises(RunOfAnotherStore, match="memory://"):
        sync(result.run_dir, other)
    assert not other.runs


def test_an_interrupted_run_shows_killed_and_resumes_to_the_same_result(small_run, tmp_path):
    tracker = MemoryTracker()

    def interrupt(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(small_run(**{"optim.epochs": 4}), tracker=tracker, progress=False, on_epoch=interrupt)
    (run_id,) = tracker.runs
    assert tracker.runs[run_id].status == "KILLED"
    resumed = train(small_run(**{"optim.epochs": 4}), tracker=tracker, progress=False)
    straight = train(small_run(**{"optim.epochs": 4, "tracking.workdir": str(tmp_path / "straight")}),
                     tracker=MemoryTracker(), progress=False)
    assert resumed.run_id == run_id and tracker.runs[run_id].status == "FINISHED"
    assert without_timing(resumed.history) == without_timing(straight.history)


def test_argument_type_errors_are_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", "2.5"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("aplab: error:") and "--epochs" in err and "\n" not in err
