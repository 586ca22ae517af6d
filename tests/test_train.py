"""Training runs end to end on the embedded digits: what is logged, determinism, resume, failures."""

from __future__ import annotations

import signal
import sys

import numpy as np
import pytest
import torch

from aplab.cli.command import main
from aplab.keys import P_TRAIN_SIZE, P_VAL_SIZE, M, T
from aplab.tracking import MemoryTracker
from aplab.train import NonFiniteLoss, train
from aplab.status import RunStatus
from tests.helpers import aplab_command, aplab_env
from tests.kill_resume import assert_resumes_to_the_uninterrupted_result, run_until

TIMING = {M.EPOCH_SECONDS, M.IMAGES_PER_SECOND}


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


class SamplingTracker(MemoryTracker):
    """The shipped MemoryTracker with a system-metrics sampler, which it lacks (``start_system_metrics`` returns
    None there): a spy that records where each sampler starts and logs three steps of one system metric, and
    whose ``finish()`` succeeds while the store is down, as MLflow's may. Only the sampler tests need it."""

    def __init__(self) -> None:
        super().__init__()
        self.monitor_starts: list[tuple[str, int]] = []

    def start_system_metrics(self, run_id, first_step=0):
        self._guard()
        self.monitor_starts.append((run_id, first_step))
        self.log_metrics(run_id, [(first_step + i, {"system/cpu_utilization_percentage": 50.0}) for i in range(3)])
        return FakeMonitor()


class FakeMonitor:
    def finish(self):
        return None


def test_a_run_logs_params_tags_metrics_artifacts_model_and_its_datasets(small_run):
    tracker = MemoryTracker()
    result = train(small_run(), tracker=tracker, progress=False)
    assert result.status == RunStatus.FINISHED
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
    for artifact in ("config.yaml", "transition.csv", "transition.png", "metrics.csv", "curves.png", "confusion.png"):
        assert artifact in run.artifacts, artifact
    transition = np.loadtxt(run.artifacts["transition.csv"], delimiter=",")
    np.testing.assert_allclose(transition.sum(axis=1), 1.0, atol=1e-5)
    assert np.diag(transition).mean() == pytest.approx(0.6, abs=0.01)
    datasets = {d.context: d for d in run.datasets}
    assert sorted(datasets) == ["test", "training", "validation"]
    assert datasets["training"].num_rows == int(run.params[P_TRAIN_SIZE]) + int(run.params[P_VAL_SIZE])
    assert datasets["validation"].num_rows == int(run.params[P_VAL_SIZE])
    # the logged model is the final one: its weights reproduce the last epoch's test accuracy
    assert list(run.models) == ["model"]
    from aplab.config.resolve import resolve
    from aplab.models import build_model, float32_head
    from aplab.train.prepare import make_batches, prepare_data
    from aplab.train.runtime import select_runtime

    cfg = resolve(small_run())
    data = prepare_data(cfg)
    _, _, test = make_batches(data, cfg, select_runtime(cfg.runtime))
    dataset = data.dataset
    model = float32_head(build_model(cfg.model.name, dataset.num_classes, dataset.channels, dataset.image_size))
    model.load_state_dict(run.models["model"])
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(batch.images).argmax(1) == batch.labels).sum()) for batch in test)
    assert correct / len(test) == pytest.approx(result.summary[M.TEST_ACC_LAST], abs=1e-12)


def test_dataset_inputs_are_identified_by_their_labels(small_run, tmp_path):
    first, other_seed = MemoryTracker(), MemoryTracker()
    train(small_run(), tracker=first, progress=False)
    train(small_run(**{"runtime.seed": 1}), tracker=other_seed, progress=False)
    (a,), (b,) = first.runs.values(), other_seed.runs.values()
    digests = [{d.context: d.digest for d in run.datasets} for run in (a, b)]
    assert digests[0]["training"] != digests[1]["training"]  # other noise draw: another training set
    assert digests[0]["test"] == digests[1]["test"]  # the same test set
    assert len({digests[0]["training"], digests[0]["validation"], digests[0]["test"]}) == 3


def test_memorisation_is_measured_on_the_flipped_samples(small_run):
    result = train(small_run(**{"loss.name": "ce", "noise.spec": "symmetric:0.8", "optim.epochs": 30}),
                   tracker=MemoryTracker(), progress=False)
    # CE under 80% noise fits the wrong labels of the flipped samples far above chance (1/9 of wrong classes)
    assert result.history[-1]["train/memorised"] > 0.3


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


NAN = {"loss.name": "ce", "optim.lr": 1e30, "optim.grad_clip": 0.0}


def test_a_nan_loss_fails_the_run_with_the_reason_and_a_rerun_retries_it(small_run):
    tracker = MemoryTracker()
    with pytest.raises(NonFiniteLoss, match="epoch 1: lower optim.lr"):
        train(small_run(**NAN), tracker=tracker, progress=False)
    (first,) = tracker.runs.values()
    assert first.status == "FAILED" and "at epoch 1" in first.tags[T.FAILURE_REASON]
    with pytest.raises(NonFiniteLoss):  # not "already finished": trained again, from scratch, as a new run
        train(small_run(**NAN), tracker=tracker, progress=False)
    assert [run.status for run in tracker.runs.values()] == ["FAILED", "FAILED"]
    assert [step for step, _ in list(tracker.runs.values())[1].metrics.get(M.TRAIN_LOSS, [])] == []


def test_a_nan_loss_is_one_line_and_exit_1_every_time(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = ["train", "--dataset", "digits", "--epochs", "2", "--no-progress", "--tracking-uri", "memory://",
               "--set", "optim.lr=1e30", "--set", "optim.grad_clip=0", "--set", "tracking.system_metrics=false"]
    for _ in range(2):
        assert main(command) == 1
        captured = capsys.readouterr()
        err = [line for line in captured.err.splitlines() if line.startswith("aplab: error:")]
        assert len(err) == 1 and "epoch 1" in err[0] and "optim.lr" in err[0] and "from scratch" in err[0]
        assert "Traceback" not in captured.err and "finished" not in captured.out


def interrupted_at(epoch):
    def interrupt(done, metrics):
        if done == epoch:
            raise KeyboardInterrupt

    return interrupt


@pytest.mark.parametrize("name", ["state.json", "checkpoint.pt"])
def test_a_truncated_run_file_fails_the_run_in_one_line_and_a_rerun_trains_it_again(small_run, tmp_path, name):
    from aplab.errors import RunFileCorrupt

    tracker = MemoryTracker()
    cfg = small_run(**{"optim.epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tracker=tracker, progress=False, on_epoch=interrupted_at(2))
    (first_id,) = tracker.runs
    path = next((tmp_path / "runs").rglob(name))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a full disk or a killed copy
    with pytest.raises(RunFileCorrupt) as failure:
        train(cfg, tracker=tracker, progress=False)
    message = str(failure.value)
    assert str(path) in message and "truncated or corrupt" in message and "again" in message and "\n" not in message
    assert tracker.runs[first_id].status == "FAILED" and name in tracker.runs[first_id].tags[T.FAILURE_REASON]
    again = train(cfg, tracker=tracker, progress=False)
    straight = train(small_run(**{"optim.epochs": 3, "tracking.workdir": str(tmp_path / "straight")}),
                     tracker=MemoryTracker(), progress=False)
    assert again.status == RunStatus.FINISHED and again.run_id != first_id
    assert without_timing(again.history) == without_timing(straight.history)
    assert [s for s, _ in tracker.runs[again.run_id].metrics[M.TRAIN_LOSS]] == [1, 2, 3]


def test_a_truncated_state_file_is_one_line_and_exit_1_from_the_cli(small_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train(small_run(**{"tracking.uri": "memory://"}), tracker=MemoryTracker(), progress=False)
    state = result.run_dir / "state.json"
    state.write_bytes(state.read_bytes()[:100])
    command = ["train", "--dataset", "digits", "--loss", "nce+rce", "--noise", "symmetric:0.4", "--epochs", "2",
               "--workdir", str(tmp_path / "runs"), "--tracking-uri", "memory://", "--no-progress",
               "--set", "tracking.system_metrics=false"]
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("aplab: error:") and "\n" not in err and str(state) in err and "from scratch" in err
    assert (result.run_dir / "state.json.corrupt").exists() and not state.exists()


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
    assert run.status == "FINISHED" and "curves.png" in run.artifacts and "model" in run.models
    assert sync(result.run_dir, tracker).run_id == synced.run_id and len(tracker.runs) == 1


def test_a_lost_store_gets_the_run_again_on_rerun_and_on_sync(small_run):
    from aplab.train import sync

    train(small_run(), tracker=MemoryTracker(), progress=False)
    replaced = MemoryTracker()  # same URI, a new empty store (mlflow.db deleted and created again)
    again = train(small_run(), tracker=replaced, progress=False)
    assert again.status == RunStatus.SKIPPED and again.synced
    (run,) = replaced.runs.values()
    assert [s for s, _ in run.metrics[M.TEST_ACC]] == [1, 2] and run.status == "FINISHED"
    assert "curves.png" in run.artifacts and "model" in replaced.runs[again.run_id].models
    third = MemoryTracker()
    synced = sync(again.run_dir, third)
    assert synced.synced and [r.status for r in third.runs.values()] == ["FINISHED"]
    assert [s for s, _ in third.runs[synced.run_id].metrics[M.TRAIN_LOSS]] == [1, 2]


def test_an_outage_at_the_end_never_claims_the_server_is_back(small_run, caplog):
    tracker = SamplingTracker()

    def outage(epoch, metrics):
        tracker.fail = epoch >= 2  # down from epoch 2 to the end: the sampler's finish() still succeeds

    with caplog.at_level("INFO", logger="aplab"):
        result = train(small_run(**{"optim.epochs": 3, "tracking.system_metrics": True}), tracker=tracker,
                       progress=False, on_epoch=outage)
    messages = [r.getMessage() for r in caplog.records]
    assert not result.synced and not any("server is back" in m for m in messages)
    assert sum("tracking unavailable" in m for m in messages) == 1


def test_system_metrics_continue_their_steps_on_resume(small_run):
    tracker = SamplingTracker()
    cfg = small_run(**{"optim.epochs": 3, "tracking.system_metrics": True})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tracker=tracker, progress=False, on_epoch=interrupted_at(2))
    train(cfg, tracker=tracker, progress=False)
    (run_id,) = tracker.runs
    assert [start for _, start in tracker.monitor_starts] == [0, 3]  # the fake sampler logged steps 0-2 first
    assert [s for s, _ in tracker.runs[run_id].metrics["system/cpu_utilization_percentage"]] == list(range(6))


def test_a_resumed_run_says_where_it_last_trained(small_run, monkeypatch):
    import socket

    tracker = MemoryTracker()
    cfg = small_run(**{"optim.epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tracker=tracker, progress=False, on_epoch=interrupted_at(1))
    (run_id,) = tracker.runs
    first_host = tracker.runs[run_id].tags[T.HOST]
    monkeypatch.setattr(socket, "gethostname", lambda: "node-b")  # a requeued task lands on another node
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    train(cfg, tracker=tracker, progress=False)
    assert first_host != "node-b" and tracker.runs[run_id].tags[T.HOST] == "node-b"
    assert tracker.runs[run_id].tags[T.SLURM_JOB_ID] == "77" and tracker.runs[run_id].status == "FINISHED"


def test_the_step_schedule_multiplies_the_rate_every_step_size_epochs(small_run):
    result = train(small_run(**{"optim.epochs": 5, "optim.schedule": "step", "optim.step_size": 2,
                                "optim.lr": 0.1, "optim.lr_decay": 0.1}), tracker=MemoryTracker(), progress=False)
    assert [row[M.LR] for row in result.history] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001], rel=1e-12)


class L1Stub(torch.nn.Module):
    """A loss of zero whose penalty is delta * ||theta||_1 (ANL's), recording the epoch hook's calls."""

    def __init__(self, delta):
        super().__init__()
        self.delta, self.epochs_seen = delta, []

    def forward(self, logits, labels):
        return (logits * 0).sum()

    def on_epoch_start(self, epoch, epochs):
        self.epochs_seen.append((epoch, epochs))

    def penalty(self, model):
        return self.delta * sum(p.abs().sum() for p in model.parameters())


def test_the_engine_minimises_the_loss_penalty_and_calls_the_epoch_hook():
    from aplab.train.batches import DeviceBatches
    from aplab.train.engine import Engine
    from aplab.train.runtime import Runtime

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    before = [p.detach().clone() for p in model.parameters()]
    images, labels = torch.randint(0, 255, (8, 1, 2, 2), dtype=torch.uint8), torch.arange(8) % 3
    runtime = Runtime(torch.device("cpu"), "fp32", False)
    batches = DeviceBatches(images, labels, labels, torch.zeros(8, dtype=torch.bool), (0.5,), (0.25,), 8, runtime.device)
    lr, delta = 0.1, 0.01
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    loss = L1Stub(delta)
    metrics, _ = Engine(model, loss, optimizer, scheduler, runtime, 0.0, 3).epoch(batches, None, batches, 3, 7)
    assert loss.epochs_seen == [(2, 7)]  # zero-based epoch, as the loss schedules count
    for old, new in zip(before, model.parameters()):  # one SGD step on delta * |theta|: theta - lr * delta * sign
        torch.testing.assert_close(new.detach(), old - lr * delta * old.sign())
    assert metrics[M.TRAIN_LOSS] == pytest.approx(delta * sum(float(p.abs().sum()) for p in before))


def test_sync_with_nothing_to_push_says_so_and_fails_on_an_unreachable_store(tmp_path, capsys):
    assert main(["sync", "--tracking-uri", "memory://", "--workdir", str(tmp_path / "none")]) == 0
    assert "nothing to push" in capsys.readouterr().out
    assert main(["sync", "--tracking-uri", "http://127.0.0.1:9", "--workdir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aplab: error:") and "127.0.0.1:9" in err and "\n" not in err
    store = tmp_path / "mlflow.db"
    assert main(["sync", "--tracking-uri", f"sqlite:///{store}", "--workdir", str(tmp_path / "none")]) == 0
    assert "nothing to push" in capsys.readouterr().out and list(tmp_path.iterdir()) == []  # no empty store made


TRAIN = ["train", "--dataset", "digits", "--loss", "nce+rce", "--noise", "symmetric:0.4", "--epochs", "6",
         "--no-progress", "--set", "tracking.system_metrics=false", "--set", "optim.batch_size=16"]  # ~0.5 s/epoch


@pytest.mark.slow
def test_a_killed_run_resumes_into_the_same_mlflow_run_with_the_same_result(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command, env = aplab_command(*TRAIN, "--tracking-uri", uri, "--workdir", str(tmp_path / "runs")), aplab_env()
    process = run_until(command, env, tmp_path, "epoch   3/6")
    process.send_signal(signal.SIGKILL)
    process.wait()
    straight = aplab_command(*TRAIN, "--tracking-uri", uri, "--workdir", str(tmp_path / "straight"),
                             "--experiment", "straight")
    assert_resumes_to_the_uninterrupted_result(command, straight, env, tmp_path, uri, epochs=6)


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
    code = main(["train", "--no-progress", "--workdir", str(tmp_path / "runs"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("aplab: error:") and message in err and "\n" not in err
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("workdir, message", [
    ("", "tracking.workdir='' is not allowed: a folder path"),
    ("notes.txt", "tracking.workdir='notes.txt' is not allowed: a folder (this is a file)"),
])
def test_a_workdir_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, monkeypatch, workdir, message):
    """Issue 22: ``--workdir`` naming a file (or nothing) was a NotADirectoryError traceback after setup."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    code = main(["train", "--no-progress", "--dataset", "digits", "--epochs", "1", "--workdir", workdir])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"aplab: error: {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_malformed_yaml_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: {name: nce+rce\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "config file=" in capsys.readouterr().err


def test_sync_refuses_to_claim_a_run_that_lives_in_another_store(small_run):
    from aplab.train import sync
    from aplab.train.sync import RunOfAnotherStore

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


def test_the_cli_logs_diagnostics_as_one_aplab_line_on_the_current_stderr(tmp_path, monkeypatch):
    import io
    import logging

    monkeypatch.chdir(tmp_path)
    assert main(["sync", "--tracking-uri", "memory://"]) == 0  # installs the handler
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)  # stderr swapped after install (a notebook, the next test)
    logging.getLogger("aplab.train.run").info("resuming x at epoch 2")
    assert later.getvalue() == "[aplab] resuming x at epoch 2\n"


def test_argument_type_errors_are_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", "2.5"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("aplab: error:") and "--epochs" in err and "\n" not in err


def test_a_lost_checkpoint_fails_the_old_run_and_trains_a_new_one_with_each_epoch_once(small_run, tmp_path):
    """Issue 22.1: state.json with epochs but no checkpoint.pt is not a run killed before its first epoch."""
    tracker = MemoryTracker()
    cfg = small_run(**{"optim.epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tracker=tracker, progress=False, on_epoch=interrupted_at(2))
    (first_id,) = tracker.runs
    next((tmp_path / "runs").rglob("checkpoint.pt")).unlink()
    again = train(cfg, tracker=tracker, progress=False)
    assert again.status == RunStatus.FINISHED and again.run_id != first_id
    assert tracker.runs[first_id].status == "FAILED"
    assert "checkpoint.pt missing after epoch 2" in tracker.runs[first_id].tags[T.FAILURE_REASON]
    assert [step for step, _ in tracker.metric_history(again.run_id, "train/loss")] == [1, 2, 3]
    assert [step for step, _ in tracker.metric_history(first_id, "train/loss")] == [1, 2]


def test_a_run_killed_after_its_last_checkpoint_finishes_on_rerun_with_every_artifact(small_run, tmp_path):
    """Issue 22.7: the last epoch checkpointed, the kill came before finishing: the re-run trains nothing, and
    finishes the run as an uninterrupted one would (confusion matrix, per-class accuracies, plots, status)."""
    tracker = MemoryTracker()
    cfg = small_run(**{"optim.epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tracker=tracker, progress=False, on_epoch=interrupted_at(3))
    (run_id,) = tracker.runs
    trained = []
    again = train(cfg, tracker=tracker, progress=False, on_epoch=lambda epoch, metrics: trained.append(epoch))
    straight = train(small_run(**{"optim.epochs": 3, "tracking.workdir": str(tmp_path / "straight")}),
                     tracker=MemoryTracker(), progress=False)
    assert trained == [] and again.status == RunStatus.FINISHED and again.run_id == run_id
    assert again.summary == straight.summary and f"{M.TEST_ACC_CLASS}/0" in again.summary
    run = tracker.runs[run_id]
    assert run.status == "FINISHED" and {"confusion.png", "curves.png", "metrics.csv"} <= set(run.artifacts)
    assert (again.run_dir / "artifacts" / "confusion.png").exists()
    assert not (again.run_dir / "checkpoint.pt").exists()
    assert [step for step, _ in tracker.metric_history(run_id, M.TRAIN_LOSS)] == [1, 2, 3]


def test_a_killed_run_resumes_under_another_spelling_of_the_same_sqlite_store(small_run, tmp_path, monkeypatch):
    """Issue 22.2: sqlite:///mlflow.db (relative) and sqlite:////<cwd>/mlflow.db are one store, one run."""
    from aplab.tracking import make_tracker

    monkeypatch.chdir(tmp_path)
    absolute = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = small_run(**{"optim.epochs": 3, "tracking.uri": absolute})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_epoch=interrupted_at(2))
    resumed_epochs = []
    again = train(small_run(**{"optim.epochs": 3, "tracking.uri": "sqlite:///mlflow.db"}), progress=False,
                  on_epoch=lambda epoch, metrics: resumed_epochs.append(epoch))
    assert resumed_epochs == [3]  # trained on from the checkpoint
    runs = make_tracker(absolute).find_runs(cfg.tracking.experiment)
    assert [(r.run_id, r.status) for r in runs] == [(again.run_id, "FINISHED")]


@pytest.mark.slow
def test_a_compiled_run_trains_and_learns_like_an_eager_one(small_run):
    """Issue 22: ``runtime.compile`` crashed on every model that has a length (``compiled or model`` asked
    nn.Sequential for len()); compiled on the CPU (inductor, a C++ compiler) it now learns."""
    tracker = MemoryTracker()
    eager = train(small_run(**{"tracking.uri": "memory://", "optim.epochs": 3}), tracker=tracker, progress=False)
    compiled = train(small_run(**{"tracking.uri": "memory://", "optim.epochs": 3, "runtime.compile": True,
                                  "tracking.workdir": str(small_run().tracking.workdir) + "-compiled"}),
                     tracker=tracker, progress=False)
    assert compiled.status == RunStatus.FINISHED and compiled.run_id != eager.run_id
    assert compiled.summary[M.TEST_ACC_LAST] > 0.6  # digits after 3 epochs (chance: 0.1)
    assert abs(compiled.summary[M.TEST_ACC_LAST] - eager.summary[M.TEST_ACC_LAST]) < 0.05
