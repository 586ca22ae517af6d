"""Pipelines: shipped files resolve, bad files fail early (exit 2), runs are skipped once finished,
failures do not stop the others, and a killed pipeline resumes with every cell run exactly once."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace
from pathlib import Path

import pytest

from aplab.cli.command import main
from aplab.config import config_hash
from aplab.pipeline import expand, load_pipeline, parse_pipeline, run_pipeline, scaled
from aplab.pipeline.quickstart import QUICKSTART
from aplab.status import RunStatus
from aplab.report.paper import PAPER_CSV
from aplab.tracking import MemoryTracker, make_tracker
from tests.helpers import aplab_command

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def paper_cells(table: str, dataset: str | None = None) -> tuple[set[str], set[tuple[str, float]]]:
    """Losses and (noise kind, rate) columns of one paper table, read straight from the CSV."""
    losses, noise = set(), set()
    with open(PAPER_CSV, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["table"] == table and dataset in (None, row["dataset"]):
                losses.add(row["loss"])
                noise.add((row["noise_type"], float(row["noise_rate"])))
    return losses, noise


def spec_noise(spec) -> set[tuple[str, float]]:
    out = set()
    for item in spec.noise:
        kind, _, rate = item.partition(":")
        out.add(("clean", 0.0) if kind == "none" else (kind, float(rate)))
    return out


# ----------------------------------------------------------------------------- shipped files


def test_pipelines_ship_the_papers_tables_and_figures():
    names = {p.stem for p in PIPELINES}
    expected = {"quickstart", "paper_table4", "paper_figure2", "paper_figure4"} | {
        f"paper_table{t}_{d}" for t in (2, 3) for d in ("mnist", "cifar10", "cifar100")}
    assert expected <= names


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_every_shipped_pipeline_resolves_every_cell(path):
    spec = load_pipeline(path)
    cells = expand(spec)
    assert len(cells) == len(spec.datasets) * len(spec.noise) * len(spec.losses) * len(spec.seeds)
    assert all(c.config.tracking.experiment == spec.experiment for c in cells)
    assert len({c.digest for c in cells}) == len(cells)
    smoke = expand(scaled(spec, "smoke"))
    human = any(s.startswith(("human:", "human_like:")) for s in spec.noise)  # CIFAR-N labels need CIFAR
    assert {c.config.data.name for c in smoke} == (set(spec.datasets) if human else {"digits"})
    assert {c.config.optim.epochs for c in smoke} == {3}


@pytest.mark.parametrize("table,dataset", [(t, d) for t in ("table2", "table3") for d in ("mnist", "cifar10", "cifar100")]
                         + [("table4", None)])
def test_paper_pipelines_have_the_papers_losses_and_noise(table, dataset):
    spec = load_pipeline(ROOT / "pipelines" / (f"paper_{table}_{dataset}.yaml" if dataset else f"paper_{table}.yaml"))
    losses, noise = paper_cells(table, dataset)
    assert set(spec.loss_order) == losses
    assert spec_noise(spec) == noise
    assert spec.seeds == (0, 1, 2) and spec.paper_table == table


def test_paper_parameters_come_from_the_presets():
    cells = {c.config.loss.name: c.config for c in expand(load_pipeline(ROOT / "pipelines" / "paper_table2_cifar100.yaml"))}
    assert (cells["nce+rce"].loss.alpha, cells["nce+rce"].loss.beta) == (10.0, 0.1)
    assert (cells["sce"].loss.alpha, cells["sce"].loss.beta) == (6.0, 0.1)
    figure4 = expand(load_pipeline(ROOT / "pipelines" / "paper_figure4.yaml"))
    assert {(c.config.loss.alpha, c.config.loss.beta) for c in figure4} == {(1.0, 1.0)}


def test_the_packaged_quickstart_equals_the_repository_copy():
    assert QUICKSTART.read_text() == (ROOT / "pipelines" / "quickstart.yaml").read_text()


def test_show_lists_every_cell_without_running(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["pipeline", "show", str(ROOT / "pipelines" / "quickstart.yaml")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("pipeline quickstart: 12 runs") and len(lines) == 13
    assert not any(tmp_path.iterdir())


def test_smoke_scale_and_set_overrides():
    spec = load_pipeline(ROOT / "pipelines" / "paper_table2_cifar10.yaml")
    smoke = scaled(spec, "smoke", ["optim.epochs=2", "optim.lr=0.02"])
    cells = expand(smoke)
    assert len(cells) == len(spec.noise) * len(spec.losses)  # one seed
    assert {(c.config.data.name, c.config.runtime.seed, c.config.optim.epochs, c.config.optim.lr) for c in cells} == {
        ("digits", 0, 2, 0.02)}
    assert cells[0].config.tracking.experiment == "paper-table2-cifar10-smoke"


# ----------------------------------------------------------------------------- bad files

GOOD_MATRIX = "  dataset: [digits]\n  noise: [symmetric:0.4]\n  loss: [ce]\n  seed: [0]\n"
BAD = {
    "unknown dataset": ("matrix:\n  dataset: [cifar11]\n  noise: [none]\n  loss: [ce]\n  seed: [0]\n", "data.name='cifar11'"),
    "unknown loss": ("matrix:\n  dataset: [digits]\n  noise: [none]\n  loss: [nce+rec]\n  seed: [0]\n", "loss.name"),
    "unknown noise kind": ("matrix:\n  dataset: [digits]\n  noise: [symetric:0.4]\n  loss: [ce]\n  seed: [0]\n", "noise"),
    "bad noise rate": ("matrix:\n  dataset: [digits]\n  noise: [symmetric:1.4]\n  loss: [ce]\n  seed: [0]\n", "noise"),
    "unknown loss parameter": ("matrix:\n  dataset: [digits]\n  noise: [none]\n  loss: [{name: ce, alpah: 1}]\n"
                               "  seed: [0]\n", "'alpah'"),
    "parameter the loss does not take": ("matrix:\n  dataset: [digits]\n  noise: [none]\n  loss: [{name: ce, beta: 2}]\n"
                                         "  seed: [0]\n", "loss.beta"),
    "empty axis": ("matrix:\n  dataset: [digits]\n  noise: []\n  loss: [ce]\n  seed: [0]\n", "matrix.noise"),
    "missing axis": ("matrix:\n  dataset: [digits]\n  noise: [none]\n  loss: [ce]\n", "matrix.seed"),
    "unknown axis": ("matrix:\n" + GOOD_MATRIX + "  optimiser: [sgd]\n", "'optimiser'"),
    "unknown top-level key": ("matrx:\n" + GOOD_MATRIX, "'matrx'"),
    "unknown override": ("matrix:\n" + GOOD_MATRIX + "overrides:\n  optim.epoch: 3\n", "'optim.epoch'"),
    "override of an axis": ("matrix:\n" + GOOD_MATRIX + "overrides:\n  loss.name: ce\n", "loss.name"),
    "bad override value": ("matrix:\n" + GOOD_MATRIX + "overrides:\n  optim.epochs: many\n", "optim.epochs"),
    "bad seed": ("matrix:\n  dataset: [digits]\n  noise: [none]\n  loss: [ce]\n  seed: [-1]\n", "matrix.seed"),
    "unknown paper table": ("paper_table: table9\nmatrix:\n" + GOOD_MATRIX, "table9"),
    "malformed yaml": ("matrix: [dataset: {\n", "valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pipeline_files_fail_before_anything_runs(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text, expected = BAD[case]
    code = main(["pipeline", "run", str(write(tmp_path, text)), "--tracking-uri", "memory://", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("aplab: error: ") and expected in err[0], err
    assert not (tmp_path / "aplab_runs").exists()


def test_missing_file_bad_scale_and_bad_set_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = write(tmp_path, "matrix:\n" + GOOD_MATRIX)
    assert main(["pipeline", "run", str(tmp_path / "absent.yaml"), "--tracking-uri", "memory://"]) == 2
    assert main(["pipeline", "run", str(good), "--scale", "tiny", "--tracking-uri", "memory://"]) == 2
    assert "smoke" in capsys.readouterr().err
    assert main(["pipeline", "run", str(good), "--set", "optim.lrr=1", "--tracking-uri", "memory://"]) == 2
    assert main(["pipeline", "run", str(good), "--workers", "2", "--tracking-uri", "memory://"]) == 2
    assert "memory://" in capsys.readouterr().err
    assert main(["pipeline", "run", str(good), "--experiment", "", "--tracking-uri", "memory://"]) == 2
    assert "tracking.experiment='' is not allowed: a non-empty name" in capsys.readouterr().err  # was the file's
    for outside in ("../../x", "a/b", ".."):  # the experiment names a folder under the workdir: never outside it
        assert main(["pipeline", "run", str(good), "--experiment", outside, "--tracking-uri", "memory://"]) == 2
        assert f"tracking.experiment='{outside}' is not allowed" in capsys.readouterr().err
    assert not (tmp_path.parent / "x").exists()  # aplab_runs/../../x
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]  # nothing made


def test_a_cell_another_process_trains_is_waited_for_then_found_finished_not_failed(tmp_path, monkeypatch, caplog):
    """Two copies of one pipeline at once: the second trains what nobody trains, waits for the claim of the
    cell the first holds, then finds it finished; nothing trains twice, nothing is called FAILED."""
    import os

    from aplab.pipeline import busy
    from aplab.train import train
    from aplab.train.claim import RunClaim

    tracker = MemoryTracker()
    spec = parse_pipeline({"name": "twice", "experiment": "twice", "matrix": {
        "dataset": ["digits"], "noise": ["none"], "loss": ["ce", "gce"], "seed": [0]},
        "overrides": {"optim.epochs": 1, "tracking.system_metrics": False, "tracking.log_model": False}})
    cells = expand(spec, workdir=str(tmp_path / "runs"))
    held = RunClaim(cells[0].run_dir)  # the other copy is training ce
    held.acquire()
    waits = []

    def the_other_copy_finishes(seconds):
        waits.append(seconds)
        held.release()
        train(cells[0].config, tracker, progress=False)

    monkeypatch.setattr(busy, "pause", the_other_copy_finishes)
    with caplog.at_level("INFO", logger="aplab"):
        result = run_pipeline(cells, "twice", tracker=tracker, progress=False)
    assert [o.status for o in result.outcomes] == ["SKIPPED", "FINISHED"] and not result.failed
    assert len(waits) == 1 and len(tracker.runs) == 2  # ce trained once, by the other copy
    said = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(said) == 1 and "digits ce none seed 0" in said[0] and f"pid {os.getpid()}" in said[0]
    assert "2 runs: 1 trained now, 1 already finished, 0 failed" in result.summary_line()


def test_status_of_a_store_that_does_not_exist_yet_is_every_cell_pending_and_makes_none(tmp_path, capsys,
                                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    good = write(tmp_path, "matrix:\n" + GOOD_MATRIX.replace("seed: [0]", "seed: [0, 1]"))
    assert main(["pipeline", "status", str(good)]) == 0
    assert "2 cells: 0 finished, 0 running, 0 failed, 2 pending" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [good]  # no mlflow.db, no lock


def test_repeated_matrix_cells_are_trained_once_and_said_once(tmp_path, caplog):
    good = write(tmp_path, "matrix:\n" + GOOD_MATRIX.replace("seed: [0]", "seed: [0, 1, 0, 1]"))
    with caplog.at_level("INFO", logger="aplab"):
        cells = expand(load_pipeline(good))
    assert [c.config.runtime.seed for c in cells] == [0, 1]
    said = [r.getMessage() for r in caplog.records if "repeat" in r.getMessage()]
    assert len(said) == 1 and "2 matrix cells repeat another's config" in said[0]
    assert "digits ce symmetric:0.4 seed 0" in said[0]


HELP_WITHOUT_TORCH = """
import sys
from aplab.cli import main

for argv in (["pipeline", "--help"], ["pipeline", "run", "--help"], ["report", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
print("torch" in sys.modules, "pandas" in sys.modules, "matplotlib" in sys.modules)
"""


def test_pipeline_and_report_help_import_no_torch():
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["False", "False", "False"]


def test_parse_keeps_loss_parameters_and_order():
    spec = parse_pipeline({"name": "x", "matrix": {"dataset": "digits", "noise": ["none"], "seed": [0, 1],
                                                   "loss": ["ce", {"name": "nce+rce", "alpha": 2, "beta": 3}]}})
    cells = expand(spec)
    assert spec.loss_order == ["ce", "nce+rce"] and spec.experiment == "aplab-x"
    assert [(c.config.loss.name, c.config.runtime.seed) for c in cells] == [
        ("ce", 0), ("ce", 1), ("nce+rce", 0), ("nce+rce", 1)]
    assert (cells[2].config.loss.alpha, cells[2].config.loss.beta) == (2.0, 3.0)


# ----------------------------------------------------------------------------- running


def small_cells(tmp_path: Path, losses: str = "[ce, gce]", epochs: int = 1, experiment: str = "t"):
    spec = parse_pipeline({"name": "small", "experiment": experiment, "overrides": {"optim.epochs": epochs},
                           "matrix": {"dataset": ["digits"], "noise": ["symmetric:0.4"], "seed": [0],
                                      "loss": [s.strip() for s in losses.strip("[]").split(",")]}})
    return expand(spec, workdir=str(tmp_path / "runs"))


def test_failures_do_not_stop_others_and_finished_runs_are_skipped(tmp_path, monkeypatch):
    import aplab.train

    real = aplab.train.train
    calls: list[str] = []

    def flaky(cfg, tracker=None, **kwargs):
        calls.append(cfg.loss.name)
        if cfg.loss.name == "ce":
            raise RuntimeError("boom")
        return real(cfg, tracker, **kwargs)

    monkeypatch.setattr(aplab.train, "train", flaky)
    tracker = MemoryTracker()
    cells = small_cells(tmp_path, "[ce, gce]")
    first = run_pipeline(cells, "small", tracker=tracker, progress=False)
    assert calls == ["ce", "gce"]  # the failure of ce did not stop gce
    assert [o.status for o in first.outcomes] == ["FAILED", "FINISHED"]
    assert "RuntimeError: boom" in first.failed[0].error

    monkeypatch.setattr(aplab.train, "train", real)
    second = run_pipeline(cells, "small", tracker=tracker, progress=False)
    assert [o.status for o in second.outcomes] == ["FINISHED", "DONE"]  # only the failed cell ran again
    runs = tracker.find_runs("t", {"pipeline": "small"})
    assert sorted(r.tags["config_hash"] for r in runs) == sorted(c.digest for c in cells)
    assert all(r.status == "FINISHED" for r in runs)
    third = run_pipeline(cells, "small", tracker=tracker, progress=False)
    assert [o.status for o in third.outcomes] == ["DONE", "DONE"]
    assert len(tracker.runs) == 2  # nothing new was started


def ends_unfinished(statuses: dict[str, RunStatus], calls: list[str]):
    """A train() that records a run in the store, as train does, and ends it with ``statuses[loss]``."""

    def train(cfg, tracker=None, **kwargs):
        calls.append(cfg.loss.name)
        status = statuses[cfg.loss.name]
        run_id = tracker.start_run(cfg.tracking.experiment, cfg.loss.name, {"config_hash": config_hash(cfg)})
        tracker.end_run(run_id, status.name)
        return SimpleNamespace(status=status, run_id=run_id, summary={}, run_dir=Path("runs") / cfg.loss.name,
                               synced=True)

    return train


def test_failed_and_killed_runs_are_not_done_and_a_rerun_retries_them(tmp_path, monkeypatch):
    import aplab.train

    real = aplab.train.train
    calls: list[str] = []
    monkeypatch.setattr(aplab.train, "train", ends_unfinished({"ce": RunStatus.FAILED, "gce": RunStatus.KILLED}, calls))
    tracker = MemoryTracker()
    cells = small_cells(tmp_path, "[ce, gce]")
    first = run_pipeline(cells, "small", tracker=tracker, progress=False)
    assert [o.status for o in first.outcomes] == ["FAILED", "KILLED"]
    assert [o.cell.config.loss.name for o in first.failed] == ["ce", "gce"]
    assert "ended FAILED" in first.failed[0].error and "1 failed, 1 killed" in first.summary_line()

    monkeypatch.setattr(aplab.train, "train", real)
    second = run_pipeline(cells, "small", tracker=tracker, progress=False)
    assert [o.status for o in second.outcomes] == ["FINISHED", "FINISHED"]  # both trained again
    assert calls == ["ce", "gce"] and not second.failed


def test_a_pipeline_with_a_failed_cell_exits_1_and_describes_its_experiment(tmp_path, monkeypatch, capsys):
    import aplab.train
    import aplab.tracking

    tracker = MemoryTracker()
    monkeypatch.setattr(aplab.tracking, "make_tracker", lambda uri=None: tracker)
    monkeypatch.setattr(aplab.train, "train", ends_unfinished({"ce": RunStatus.FAILED}, []))
    pipeline = write(tmp_path, "name: small\nexperiment: t\ndescription: one loss that fails\nmatrix:\n"
                     "  dataset: [digits]\n  noise: [none]\n  loss: [ce]\n  seed: [0]\n")
    code = main(["pipeline", "run", str(pipeline), "--tracking-uri", "memory://", "--no-progress",
                 "--workdir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 1
    assert "0 trained now, 0 already finished, 1 failed" in out and "FAILED digits ce none seed 0" in out
    assert "re-run the same command to retry" in out
    assert tracker.descriptions["t"].startswith("Runs of the aplab pipeline `small`: one loss that fails (1 runs")


def _state(run_dir: Path) -> dict:
    return {**json.loads((run_dir / "state.json").read_text()), "checkpoint": (run_dir / "checkpoint.pt").exists()}


#: Runs a pipeline in this process and SIGKILLs it right after epoch 2 of its gce cell has been
#: checkpointed (train calls on_epoch after the checkpoint): a kill mid-run, at a known point.
KILL_MID_RUN = """
import os, signal, sys
import aplab.train
from aplab.cli import main
from aplab.config import config_hash

real = aplab.train.train

def dying(cfg, tracker=None, on_epoch=None, **kwargs):
    def tick(epoch, metrics):
        on_epoch(epoch, metrics)
        if cfg.loss.name == "gce" and epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(cfg, tracker, on_epoch=tick, **kwargs)

aplab.train.train = dying
sys.exit(main(sys.argv[1:]))
"""


def _finished_per_hash(uri: str, experiment: str) -> Counter:
    return Counter(r.tags["config_hash"] for r in make_tracker(uri).find_runs(experiment) if r.status == "FINISHED")


@pytest.mark.slow
def test_a_killed_pipeline_resumes_and_runs_each_cell_exactly_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pipeline = write(tmp_path, "name: resume\nexperiment: resume\noverrides: {optim.epochs: 3}\nmatrix:\n"
                     "  dataset: [digits]\n  noise: [symmetric:0.6]\n  loss: [ce, gce, nce+rce]\n  seed: [0]\n")
    arguments = ["pipeline", "run", str(pipeline), "--tracking-uri", uri, "--workdir", str(tmp_path / "runs"),
                 "--no-progress"]
    killed = subprocess.run([sys.executable, "-c", KILL_MID_RUN, *arguments], cwd=tmp_path, capture_output=True,
                            text=True, timeout=400)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    cells = {c.config.loss.name: c for c in expand(load_pipeline(pipeline), workdir=str(tmp_path / "runs"))}
    before = _finished_per_hash(uri, "resume")
    assert before == Counter({cells["ce"].digest: 1})
    gce = _state(tmp_path / "runs" / "resume" / cells["gce"].digest)
    assert gce["status"] == "RUNNING" and gce["checkpoint"] and gce["run_id"]

    second = subprocess.run(aplab_command(*arguments), cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "resuming" in second.stderr and "at epoch 3" in second.stderr  # gce went on from its checkpoint
    after = _finished_per_hash(uri, "resume")
    assert set(after) == {c.digest for c in cells.values()} and set(after.values()) == {1}
    assert "1 already finished" in second.stdout
    runs = make_tracker(uri).find_runs("resume")
    assert next(r for r in runs if r.tags["config_hash"] == cells["gce"].digest).run_id == gce["run_id"]


@pytest.mark.slow
def test_workers_run_cells_in_processes(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pipeline = write(tmp_path, "name: par\nexperiment: par\noverrides: {optim.epochs: 1}\nmatrix:\n"
                     "  dataset: [digits]\n  noise: [symmetric:0.4]\n  loss: [ce, gce]\n  seed: [0, 1]\n")
    code = main(["pipeline", "run", str(pipeline), "--tracking-uri", uri, "--workers", "2",
                 "--workdir", str(tmp_path / "runs"), "--no-progress"])
    assert code == 0
    runs = make_tracker(uri).find_runs("par", {"pipeline": "par"})
    assert len(runs) == 4 and {r.status for r in runs} == {"FINISHED"}


KILLER_LOSS = """
import os, signal, torch


class Die(torch.nn.Module):
    \"\"\"A loss whose first call SIGKILLs the worker process training it.\"\"\"

    def __init__(self, num_classes):
        super().__init__()

    def forward(self, logits, targets):
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_worker_killed_mid_pipeline_fails_only_its_cell_and_the_others_train_on(tmp_path, monkeypatch, capsys):
    """Issue 22.6: one dead worker of --workers 2 failed every cell, those never started and the other worker's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "killer.py").write_text(KILLER_LOSS)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pipeline = write(tmp_path, "name: die\nexperiment: die\noverrides: {optim.epochs: 3}\nmatrix:\n"
                     "  dataset: [digits]\n  noise: [symmetric:0.4]\n  loss: [killer:Die, ce]\n  seed: [0, 1, 2]\n")
    code = main(["pipeline", "run", str(pipeline), "--tracking-uri", uri, "--workers", "2",
                 "--workdir", str(tmp_path / "runs"), "--no-progress"])
    out = capsys.readouterr()
    assert code == 1
    cells = expand(load_pipeline(pipeline), workdir=str(tmp_path / "runs"))
    killed = {c.digest for c in cells if c.config.loss.name == "killer:Die"}
    ce = {c.digest for c in cells if c.config.loss.name == "ce"}
    assert _finished_per_hash(uri, "die") == Counter({digest: 1 for digest in ce})
    said = out.out + out.err
    died = [line for line in said.splitlines() if "its worker process died (killed by SIGKILL)" in line]
    assert died and all("killer:Die" in line for line in died) and all(digest in said for digest in killed)
    assert "3 trained now" in out.out and "3 failed" in out.out


@pytest.mark.slow
def test_quickstart_shows_ce_memorising_while_apl_keeps_its_accuracy(tmp_path, capsys, monkeypatch):
    """The quickstart's promise (about 1 minute with 2 workers on 2 CPU cores)."""
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    code = main(["quickstart", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--workers", "2",
                 "--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0 and "NCE+RCE" in out and "aplab ui --tracking-uri" in out
    dynamics = pd.read_csv(tmp_path / "out" / "dynamics.csv").set_index("loss")
    ce, apl = dynamics.loc["ce"], dynamics.loc["nce+rce"]
    assert ce["memorised"] > 90 and ce["drop"] > 10  # CE fits the wrong labels and loses accuracy
    assert apl["memorised"] < 30 and apl["drop"] < 8  # NCE+RCE keeps its accuracy
    assert apl["last"] > ce["last"] + 20
    assert (tmp_path / "out" / "curves_digits.png").is_file() and (tmp_path / "out" / "memorisation_digits.png").is_file()


def test_the_docs_describe_the_shipped_quickstart_and_what_each_metric_reads():
    from aplab.report.tables import METRICS

    docs = (ROOT / "docs" / "pipelines.md").read_text()
    spec = load_pipeline(ROOT / "pipelines" / "quickstart.yaml")
    row = next(line for line in docs.splitlines() if line.startswith("| `quickstart.yaml`"))
    (noise,) = spec.noise
    kind, rate = noise.split(":")
    assert f"at {rate} {kind} noise" in row and f"{spec.overrides['optim.epochs']} epochs" in row
    assert row.rstrip(" |").endswith(f"| {len(expand(spec))}")
    text = " ".join(docs.split())  # the docs wrap lines
    for name, metric in METRICS.items():
        assert f"`--metric {name}` reads `{metric.key}`" in text, name


def test_off_a_terminal_a_pipeline_prints_one_line_per_finished_run(tmp_path, capsys, monkeypatch):
    """Piped or in CI there is no progress bar: each finished run says so in one line, as it finishes."""
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "name: lines\nexperiment: lines\nmatrix:\n  dataset: [digits]\n  loss: [ce, gce]\n"
                           "  noise: [symmetric:0.4]\n  seed: [0]\noverrides:\n  optim.epochs: 1\n"
                           "  tracking.log_model: false\n  tracking.system_metrics: false\n")
    assert main(["pipeline", "run", str(path), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if " FINISHED " in line]
    assert len(lines) == 2
    assert lines[0].startswith("[aplab] 1/2 FINISHED ") and lines[1].startswith("[aplab] 2/2 FINISHED ")
    assert all("test/acc " in line for line in lines)


def test_the_fashion_mnist_seed0_cells_are_cells_of_the_full_pipeline():
    """The CPU results page's four runs are the full pipeline's runs (same config hashes), so it skips them."""
    full = {c.digest for c in expand(load_pipeline(ROOT / "pipelines" / "fashion_mnist.yaml"))}
    seed0 = [c.digest for c in expand(load_pipeline(ROOT / "pipelines" / "fashion_mnist_seed0.yaml"))]
    assert len(seed0) == 4 and set(seed0) <= full
