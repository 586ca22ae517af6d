"""Scale-out: GPUs for worker processes (--gpus, --runs-per-gpu) and shards of a pipeline (--shard)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from aplab.cli.command import main
from aplab.errors import ConfigError
from aplab.keys import T
from aplab.pipeline import expand, parse_pipeline, run_pipeline
from aplab.placement import placement_tags
from aplab.workers.gpus import GpuRequest, WorkerPlan, assign_gpus, gpu_plan, parse_gpus
from aplab.pipeline.shard import Shard, parse_shard, shard_cells
from aplab.tracking import make_tracker

PIPELINE = ("name: sh\nexperiment: sh\noverrides: {optim.epochs: 1}\nmatrix:\n  dataset: [digits]\n"
            "  noise: [symmetric:0.4]\n  loss: [ce, gce]\n  seed: [0]\n")


def write(tmp_path: Path, text: str = PIPELINE) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- GPUs for workers


def test_workers_take_the_gpus_in_turn_k_at_a_time():
    assert assign_gpus(["0", "1"], 2, 4) == ["0", "1", "0", "1"]
    assert assign_gpus(["0", "1", "2"], 1, 2) == ["0", "1"]
    assert gpu_plan(GpuRequest(auto=True), 2, None, devices=["0", "1", "2"]) == WorkerPlan(6, ("0", "1", "2") * 2)
    assert gpu_plan(parse_gpus("1,3"), 1, None, devices=["0", "1", "2", "3"]) == WorkerPlan(2, ("1", "3"))


def test_listed_indices_are_visible_ones_mapped_to_the_physical_gpus():
    # a parent restricted to CUDA_VISIBLE_DEVICES=5,7 sees them as 0 and 1: the workers get 5 and 7
    assert gpu_plan(parse_gpus("1"), 2, None, devices=["5", "7"]) == WorkerPlan(2, ("7", "7"))


def test_a_distributed_run_takes_a_group_of_gpus_per_worker():
    # runtime.nproc_per_node = 2 on five GPUs: two groups of two, the fifth GPU idle; K runs per group
    five = ["0", "1", "2", "3", "4"]
    assert gpu_plan(GpuRequest(auto=True), 1, None, devices=five, gpus_per_run=2) == WorkerPlan(2, ("0,1", "2,3"))
    assert gpu_plan(GpuRequest(auto=True), 2, None, devices=five, gpus_per_run=2) == WorkerPlan(
        4, ("0,1", "2,3", "0,1", "2,3"))
    assert gpu_plan(parse_gpus("3,1"), 1, None, devices=["6", "7", "8", "9"], gpus_per_run=2) == WorkerPlan(1, ("9,7",))
    assert gpu_plan(GpuRequest(auto=True), 1, None, devices=[], gpus_per_run=2) == WorkerPlan(1, ())  # CPU: gloo
    with pytest.raises(ConfigError) as refused:
        gpu_plan(parse_gpus("0,1"), 1, None, devices=five, gpus_per_run=3)
    assert refused.value.field == "runtime.nproc_per_node"


def test_without_gpus_auto_and_none_keep_cpu_workers():
    assert gpu_plan(GpuRequest(auto=True), 1, None, devices=[]) == WorkerPlan(1, ())
    assert gpu_plan(GpuRequest(auto=True), 1, 3, devices=[]) == WorkerPlan(3, ())
    assert gpu_plan(parse_gpus("none"), 4, 2, devices=["0"]) == WorkerPlan(2, ())


@pytest.mark.parametrize("gpus, k, workers, devices, field", [
    ("2", 1, None, ["0", "1"], "--gpus"),  # index out of range
    ("0", 1, None, [], "--gpus"),  # no GPU at all
    ("0", 0, None, ["0"], "--runs-per-gpu"),
    ("0", 1, 3, ["0"], "--workers"),  # more workers than GPUs x K
])
def test_bad_gpu_requests_are_refused(gpus, k, workers, devices, field):
    with pytest.raises(ConfigError) as refused:
        gpu_plan(parse_gpus(gpus), k, workers, devices=devices)
    assert refused.value.field == field


@pytest.mark.parametrize("text", ["0,0", "x", "-1", "1;2", ""])
def test_bad_gpu_lists_are_refused(text):
    with pytest.raises(ConfigError, match="--gpus"):
        parse_gpus(text)


@pytest.mark.parametrize("flags", [["--gpus", "0"], ["--gpus", "0,1"], ["--runs-per-gpu", "0"]])
def test_pipeline_refuses_gpus_this_machine_lacks_before_anything_runs(tmp_path, capsys, monkeypatch, flags):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)  # a machine without GPUs, whatever runs the tests
    code = main(["pipeline", "run", str(write(tmp_path)), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
                 "--workdir", str(tmp_path / "runs"), "--no-progress", *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"aplab: error: {flags[0]}=")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "m.db").exists()


def test_study_refuses_a_gpu_this_machine_lacks(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    space = Path(__file__).resolve().parents[1] / "search_spaces" / "apl_paper_grid.yaml"
    code = main(["study", "--space", str(space), "--dataset", "digits", "--loss", "nce+rce", "--gpus", "3",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--gpus='3' is not allowed" in err[0] and "no GPU" in err[0]


@pytest.fixture
def outside_slurm(monkeypatch) -> None:
    """This test as a plain process even when the suite runs in a Slurm job: every SLURM_* variable unset, so no
    scheduler (use_slurm, set by any earlier CLI call) finds a task to tag."""
    for name in [name for name in os.environ if name.startswith("SLURM_")]:
        monkeypatch.delenv(name)


def test_a_cuda_run_records_the_physical_gpu_and_the_host(monkeypatch, outside_slurm):
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"gpu-model-{index}")
    tags = placement_tags(torch.device("cuda", 1))
    assert tags == {T.HOST: socket.gethostname(), T.CUDA_VISIBLE_DEVICES: "4,6", T.GPU_INDEX: "6",
                    T.GPU_NAME: "gpu-model-1"}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert placement_tags(torch.device("cpu")) == {T.HOST: socket.gethostname()}


@pytest.mark.slow
def test_a_spawned_worker_trains_with_its_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spec = parse_pipeline({"name": "g", "experiment": "g", "overrides": {"optim.epochs": 1, "runtime.device": "cpu"},
                           "matrix": {"dataset": ["digits"], "noise": ["symmetric:0.4"], "seed": [0], "loss": ["ce"]}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_pipeline(expand(spec, workdir=str(tmp_path / "runs")), "g", tracking_uri=uri, workers=1,
                          progress=False, gpus=("3",))
    assert [o.status for o in result.outcomes] == ["FINISHED"]
    (run,) = make_tracker(uri).find_runs("g")
    assert run.tags[T.CUDA_VISIBLE_DEVICES] == "3" and run.tags[T.HOST] == socket.gethostname()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # set in the worker only


# ----------------------------------------------------------------------------- shards


def test_shards_are_disjoint_and_together_the_whole_matrix():
    spec = parse_pipeline({"name": "s", "experiment": "s", "matrix": {
        "dataset": ["digits"], "noise": ["symmetric:0.2", "symmetric:0.4"], "seed": [0, 1],
        "loss": ["ce", "gce", "nce+rce"]}})
    cells = expand(spec)
    assert len(cells) == 12
    for n in range(1, 5):
        parts = [shard_cells(cells, Shard(i, n)) for i in range(1, n + 1)]
        indices = [c.index for part in parts for c in part]
        assert sorted(indices) == list(range(12)) and len(set(indices)) == 12
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    # the same file gives the same shard on another host: expanding again picks the same configs
    assert [c.digest for c in shard_cells(expand(spec), Shard(2, 3))] == [c.digest for c in shard_cells(cells, Shard(2, 3))]


def test_parse_shard():
    assert parse_shard("2/3") == Shard(2, 3) and parse_shard("1/1") == Shard(1, 1)


@pytest.mark.parametrize("text", ["5/2", "0/2", "x", "1/0", "1/2/3", "-1/2"])
def test_bad_shards_exit_2_in_one_line(tmp_path, capsys, text):
    code = main(["pipeline", "run", str(write(tmp_path)), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
                 "--workdir", str(tmp_path / "runs"), "--no-progress", "--gpus", "none", f"--shard={text}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"aplab: error: --shard={text!r}")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_two_shards_train_the_pipeline_once(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["pipeline", "run", str(write(tmp_path)), "--tracking-uri", uri, "--workdir", str(tmp_path / "runs"),
              "--no-progress", "--gpus", "none"]
    assert main([*common, "--shard", "1/2"]) == 0
    assert "shard 1/2 trains 1 of the 2 cells" in capsys.readouterr().out
    assert len(make_tracker(uri).find_runs("sh")) == 1
    assert main([*common, "--shard", "2/2"]) == 0
    runs = make_tracker(uri).find_runs("sh")
    assert len(runs) == 2 and {r.status for r in runs} == {"FINISHED"}
    assert len({r.tags[T.CONFIG_HASH] for r in runs}) == 2
