"""One run on several processes (DistributedDataParallel, gloo on CPU): the arithmetic of sharing batches,
gradients equal to the global batch's, one tracked run, resume after a SIGKILL, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from aplab.cli.command import main
from aplab.distributed import Rank, split_bounds
from aplab.keys import M, T
from tests.helpers import aplab_command, aplab_env, free_port
from tests.kill_resume import assert_resumes_to_the_uninterrupted_result, run_until

# -- the pure parts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, world", [(7, 2), (8, 2), (10, 3), (2, 4), (0, 2), (1000, 7)])
def test_rank_parts_cover_every_item_once_in_order_and_differ_by_at_most_one(size, world):
    parts = [split_bounds(size, world, rank) for rank in range(world)]
    covered = [i for lo, hi in parts for i in range(lo, hi)]
    assert covered == list(range(size))  # each item once, ranks in order (rank 0 first)
    lengths = [hi - lo for lo, hi in parts]
    assert max(lengths) - min(lengths) <= 1


def test_an_uneven_global_batch_splits_3_and_4():
    assert [split_bounds(7, 2, rank) for rank in range(2)] == [(0, 3), (3, 7)]


def device_batches(rank, augment=None, n=23, batch_size=8):
    from aplab.train.batches import DeviceBatches

    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8, generator=gen)
    labels = torch.arange(n) % 3
    batches = DeviceBatches(images, labels, labels, torch.zeros(n, dtype=torch.bool), (0.5,), (0.25,), batch_size,
                            torch.device("cpu"), augment=augment, shuffle=True, rank=rank)
    batches.seed(5)
    return batches


@pytest.mark.parametrize("world", [2, 3])
def test_the_ranks_slices_of_device_batches_are_the_single_process_batches(world):
    from aplab.data import AUGMENTATIONS

    augment = AUGMENTATIONS.get("crop_flip_rotate", "data.augment")
    single = [(b.images, b.labels) for b in device_batches(Rank(), augment)]
    ranks = [list(device_batches(Rank(r, world), augment)) for r in range(world)]
    assert all(len(batches) == len(single) for batches in ranks)  # the same optimizer steps per epoch
    for step, (images, labels) in enumerate(single):
        parts = [ranks[r][step] for r in range(world)]
        torch.testing.assert_close(torch.cat([p.images for p in parts]), images, rtol=0, atol=0)
        assert torch.equal(torch.cat([p.labels for p in parts]), labels)
        assert all(p.global_size == labels.numel() for p in parts)


def test_a_global_batch_that_leaves_a_rank_one_sample_is_left_out_and_later_epochs_keep_their_order():
    from aplab.data import AUGMENTATIONS

    augment = AUGMENTATIONS.get("crop_flip", "data.augment")
    # 23 samples in batches of 8: the last global batch has 7, one sample for some rank of 4 (BatchNorm fails)
    four, single = device_batches(Rank(0, 4), augment), device_batches(Rank(), augment)
    assert [b.global_size for b in four] == [8, 8]
    assert [b.global_size for b in device_batches(Rank(0, 3), augment)] == [8, 8, 7]  # 2 + 2 + 3
    list(single)  # both have drawn one epoch: the next epoch's batches are the same
    torch.testing.assert_close(next(iter(four)).images, next(iter(single)).images[:2], rtol=0, atol=0)


@pytest.mark.parametrize("batch_size", [82, 164])
def test_no_rank_gets_a_slice_of_one_sample_in_any_epoch(batch_size):
    # digits: 1151 training samples; the last global batch has 3, one sample for rank 0 of 2
    for rank in (Rank(0, 2), Rank(1, 2)):
        batches = device_batches(rank, n=1151, batch_size=batch_size)
        sizes = [b.labels.numel() for _ in range(3) for b in batches]
        assert len(sizes) == 3 * (1151 // batch_size) and min(sizes) == batch_size // 2


def test_a_global_batch_of_fewer_than_two_samples_per_rank_is_refused():
    from aplab.errors import ConfigError
    from aplab.train.batches import check_batch_split

    with pytest.raises(ConfigError) as refused:
        check_batch_split(7, Rank(1, 4))
    assert refused.value.field == "optim.batch_size" and "at least 8" in str(refused.value)
    check_batch_split(8, Rank(1, 4))
    check_batch_split(1, Rank())  # one process: BatchNorm's batch of one is left out as before


def test_ranks_other_than_0_draw_their_own_loss_numbers_and_rank_0_those_of_one_process():
    from aplab.train.runtime import seed_rank

    def draws(seed: int, rank: Rank) -> torch.Tensor:  # what NLNL draws after the model is built alike everywhere
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            seed_rank(seed, rank)
            return torch.rand(8)

    one_process = draws(3, Rank())
    assert torch.equal(draws(3, Rank(0, 2)), one_process)
    assert not torch.isclose(draws(3, Rank(1, 2)), one_process).any()
    assert torch.equal(draws(3, Rank(1, 2)), draws(3, Rank(1, 2)))
    assert not torch.isclose(draws(3, Rank(1, 2)), draws(4, Rank(0, 2))).any()  # not seed + rank: no collision


def test_a_resume_under_another_world_size_gives_each_rank_its_own_draws():
    from types import SimpleNamespace

    from aplab.config import RunConfig
    from pathlib import Path

    from aplab.train.context import RunContext
    from aplab.train.resume import restore_training

    class Loads:  # the model, optimizer and schedule: their loading is not what is tested here
        def load_state_dict(self, state):
            pass

    with torch.random.fork_rng():
        torch.manual_seed(9)
        saved = torch.get_rng_state()
        one_process = torch.rand(8)
    checkpoint = {"model": {}, "optimizer": {}, "scheduler": {}, "torch_rng": saved, "epoch": 3,
                  "data_rng": torch.Generator().get_state(), "rank_rngs": [{}]}  # a checkpoint of one process

    def draws(rank: Rank) -> torch.Tensor:
        engine = SimpleNamespace(model=Loads(), optimizer=Loads(), scheduler=Loads(), runtime=None)
        with torch.random.fork_rng():
            context = RunContext(RunConfig(), "0" * 16, None, "memory://", Path("unused"), rank)
            start = restore_training(context, engine, SimpleNamespace(generator=torch.Generator()), checkpoint)
            assert start == 4
            return torch.rand(8)

    assert torch.equal(draws(Rank(0, 2)), one_process)  # rank 0 goes on as the process that checkpointed
    assert not torch.isclose(draws(Rank(1, 2)), one_process).any()
    assert torch.equal(draws(Rank(1, 2)), draws(Rank(1, 2)))


@pytest.mark.parametrize("shuffle", [True, False])
def test_the_file_loader_sampler_gives_each_rank_its_slice_of_the_same_batches(shuffle):
    from aplab.data.files import RankBatchSampler

    def batches(rank):
        return list(RankBatchSampler(21, 6, shuffle, torch.Generator().manual_seed(3), rank))

    single = batches(Rank())
    assert len(single) == (3 if shuffle else 4)  # shuffled: the incomplete last batch is dropped
    two = [batches(Rank(r, 2)) for r in range(2)]
    assert [a + b for a, b in zip(*two)] == single
    assert len(RankBatchSampler(21, 6, shuffle, torch.Generator(), Rank(1, 2))) == len(single)


def test_file_batches_of_two_ranks_are_the_single_process_batches(tmp_path):
    from PIL import Image
    from torchvision import transforms

    from aplab.train.batches import FileBatches

    paths = []
    for i in range(11):
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.fromarray(np.full((4, 4, 3), 20 * i, dtype=np.uint8)).save(paths[-1], format="JPEG")
    labels = torch.arange(11)

    def epoch(rank):
        batches = FileBatches(paths, np.arange(11), labels, labels, torch.zeros(11, dtype=torch.bool),
                              transforms.ToTensor(), 4, torch.device("cpu"), shuffle=True, workers=0, rank=rank)
        batches.seed(7)
        return [(b.labels, b.images, b.global_size) for b in batches]

    single, ranks = epoch(Rank()), [epoch(Rank(r, 2)) for r in range(2)]
    assert len(single) == 2 and all(len(r) == 2 for r in ranks)  # 11 in batches of 4: the last 3 dropped
    for step, (labels_, images, size) in enumerate(single):
        assert torch.equal(torch.cat([ranks[0][step][0], ranks[1][step][0]]), labels_)
        assert torch.equal(torch.cat([ranks[0][step][1], ranks[1][step][1]]), images)
        assert ranks[0][step][2] == ranks[1][step][2] == size == 4


def test_evaluation_shards_cover_the_set_once_without_padding():
    from aplab.train.prepare import shard

    idx = np.arange(100, 111)  # 11 samples on 3 ranks: 3 + 4 + 4, none twice, none padded
    parts = [shard(idx, Rank(r, 3)) for r in range(3)]
    assert np.array_equal(np.concatenate(parts), idx)


def test_a_rank_s_error_reaches_the_launcher_with_its_type_and_one_line_message():
    import pickle

    from aplab.errors import ConfigError, RunFileCorrupt
    from aplab.train.group import portable, rebuild

    for error in (ConfigError("runtime.device", "cuda", "cpu or auto"), RunFileCorrupt("/r/state.json", "truncated",
                                                                                         "run it again")):
        sent = pickle.loads(pickle.dumps(portable(error)))  # what crosses the queue from rank 0
        received = rebuild(sent)
        assert type(received) is type(error) and str(received) == str(error)


def test_a_rank_s_error_keeps_its_attributes_and_a_plain_exception_its_arguments():
    import pickle

    from aplab.errors import ConfigError
    from aplab.train.engine import NonFiniteLoss
    from aplab.train.group import portable, rebuild

    received = rebuild(pickle.loads(pickle.dumps(portable(ConfigError("runtime.device", "cuda", "cpu or auto")))))
    assert (received.field, received.value, received.allowed) == ("runtime.device", "cuda", "cpu or auto")
    assert rebuild(pickle.loads(pickle.dumps(portable(NonFiniteLoss(float("nan"), 4))))).epoch == 4
    named = rebuild(portable(ConfigError("data.name", "x", "digits")), "rank 1: data.name='x' is not allowed")
    assert named.field == "data.name" and str(named).startswith("rank 1: ")
    assert rebuild(portable(OSError(2, "no such file"))).errno == 2  # unpickled as it was


# -- gradients, two gloo processes ------------------------------------------------------------------------
def one_step(rank: int, world: int, port: int, folder: str) -> None:
    """Rank ``rank`` of ``world`` (or the single process, world 1): one SGD step of a linear model on a
    global batch of 7 (3 + 4 on two ranks); its parameters after the step and its sums go to ``folder``."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from aplab import losses
    from aplab.train.batches import DeviceBatches
    from aplab.train.engine import Engine
    from aplab.train.runtime import Runtime

    where = Rank(rank, world)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    trainer = DistributedDataParallel(model) if world > 1 else None
    gen = torch.Generator().manual_seed(2)
    images, labels = torch.randint(0, 255, (7, 1, 2, 2), dtype=torch.uint8, generator=gen), torch.arange(7) % 3
    runtime = Runtime(torch.device("cpu"), "fp32", False)
    batches = DeviceBatches(images, labels, labels, torch.zeros(7, dtype=torch.bool), (0.5,), (0.25,), 7,
                            runtime.device, shuffle=True, rank=where)
    batches.seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    engine = Engine(model, losses.build("ce", 3), optimizer, scheduler, runtime, 0.0, 3, trainer=trainer,
                    rank=where)
    sums = engine.train_epoch(batches)
    size = next(iter(batches)).labels.numel()
    torch.save({"params": [p.detach() for p in model.parameters()], "sums": sums, "size": size},
               f"{folder}/rank{rank}of{world}.pt")
    if world > 1:
        dist.destroy_process_group()


def test_two_ranks_step_with_the_gradient_of_the_global_batch_mean_when_it_does_not_divide(tmp_path):
    import torch.multiprocessing as mp

    one_step(0, 1, 0, str(tmp_path))
    mp.start_processes(one_step, args=(2, free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    single = torch.load(tmp_path / "rank0of1.pt")
    ranks = [torch.load(tmp_path / f"rank{r}of2.pt") for r in range(2)]
    assert [r["size"] for r in ranks] == [3, 4]  # 7 does not divide by 2
    torch.manual_seed(0)
    before = [p.detach() for p in torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).parameters()]
    for rank in ranks:
        for after, expected, start in zip(rank["params"], single["params"], before):
            assert not torch.equal(after, start)  # the step moved the weights
            torch.testing.assert_close(after, expected, rtol=1e-6, atol=1e-7)
    # the ranks' sums add up to the single process's (loss x samples, correct counts, sample count)
    torch.testing.assert_close(ranks[0]["sums"] + ranks[1]["sums"], single["sums"], rtol=1e-6, atol=0)


# -- whole runs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", ["0", "-1"])
def test_a_process_count_below_one_exits_2_with_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, n):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--nproc-per-node", n, "--no-progress", "--workdir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("aplab: error:") and f"runtime.nproc_per_node={n}" in err and "\n" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_process_count_below_one_is_refused_before_torch_is_imported(tmp_path):
    code = ("import sys; from aplab.cli import main; status = main(['train', '--nproc-per-node', '0', "
            "'--no-progress']); print('torch' in sys.modules); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout.split() == ["False"]
    assert done.stderr.startswith("aplab: error:") and "runtime.nproc_per_node=0" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_ranks_share_the_cores_this_process_may_run_on_not_the_machines(monkeypatch):
    from aplab.processes import cores_share

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5, 6, 7, 8}, raising=False)
    assert [cores_share(world) for world in (1, 2, 8)] == [5, 2, 1]


#: A rank's entry point run up to where it asks the environment for its rank (what the elastic agent sets), stopped
#: there by an exception of the test's own: the SIGUSR2 handler before the call, and when it got there. Nothing
#: rests on the production ``assert`` that follows (gone under ``python -O``).
UP_TO_THE_RANK = """
import signal
import aplab.train.launch as launch

class AskedForItsRank(Exception):
    pass

def stop_here():
    raise AskedForItsRank(signal.getsignal(signal.SIGUSR2))

launch.rank_from_environment = stop_here
print("before", signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL)
try:
    launch.run_rank(None, None, {}, False, None, None, False)
except AskedForItsRank as stopped:
    print("ignored", stopped.args[0] == signal.SIG_IGN)
"""


@pytest.mark.parametrize("flags", [[], ["-O"]])
def test_a_rank_ignores_slurms_requeue_signal_from_its_start(flags):
    done = subprocess.run([sys.executable, *flags, "-c", UP_TO_THE_RANK], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["before True", "ignored True"]


def test_a_memory_store_with_several_processes_is_refused_before_any_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--nproc-per-node", "2", "--tracking-uri", "memory://", "--no-progress",
                 "--workdir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "runtime.nproc_per_node=2" in err and "memory://" in err and "\n" not in err
    assert not (tmp_path / "runs").exists()


def test_more_ranks_than_gpus_exits_2_with_one_line_before_any_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one GPU, on any machine: the count is checked
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code = main(["train", "--nproc-per-node", "2", "--device", "cuda", "--no-progress",
                 "--workdir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("aplab: error: runtime.nproc_per_node=2 ") and "at most 1" in err
    assert "\n" not in err
    assert not (tmp_path / "runs").exists()


def test_a_bad_dataset_met_by_every_rank_is_one_line_exit_2_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--nproc-per-node", "2", "--dataset", "webvision_mini", "--data-dir",
                 str(tmp_path / "none"), "--no-progress", "--workdir", str(tmp_path / "runs")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aplab: error:")]
    assert code == 2 and len(err) == 1 and "data.data_dir=" in err[0]  # rank 0's own error, not "a rank died"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


DIGITS = ["train", "--dataset", "digits", "--loss", "nce+rce", "--noise", "symmetric:0.4",
          "--set", "tracking.system_metrics=false"]


def test_a_two_process_digits_run_is_one_finished_run_like_the_single_process_one(tmp_path, monkeypatch):
    from aplab.tracking import make_tracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = [*DIGITS, "--epochs", "3", "--no-progress", "--tracking-uri", uri, "--workdir", str(tmp_path / "runs")]
    command, env = aplab_command(*common, "--nproc-per-node", "2", "--experiment", "ddp"), aplab_env()
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("finished: run ") == 1  # one report, from rank 0
    assert main([*common, "--experiment", "single"]) == 0

    tracker = make_tracker(uri)
    (ddp,) = tracker.find_runs("ddp")  # exactly one run, not one per rank
    (single,) = tracker.find_runs("single")
    assert ddp.status == "FINISHED"
    assert ddp.tags[T.WORLD_SIZE] == "2" and ddp.tags[T.BACKEND] == "gloo" and single.tags[T.WORLD_SIZE] == "1"
    assert set(ddp.metrics) == set(single.metrics)
    for key in ddp.metrics:
        steps = [step for step, _ in tracker.metric_history(ddp.run_id, key)]
        assert steps == [step for step, _ in tracker.metric_history(single.run_id, key)], key
    assert [s for s, _ in tracker.metric_history(ddp.run_id, M.TEST_ACC)] == [1, 2, 3]
    # the same experiment on CPU differs by BatchNorm statistics (each rank's half batch: PyTorch's
    # SyncBatchNorm is GPU-only) and float summation order; measured: 95.54% vs 94.15% after 3 epochs
    assert abs(ddp.metrics[M.TEST_ACC_LAST] - single.metrics[M.TEST_ACC_LAST]) < 0.05
    assert ddp.tags[T.CONFIG_HASH] == single.tags[T.CONFIG_HASH]  # the same experiment: nproc is not a result field
    differ = {k for k in ddp.params if ddp.params[k] != single.params.get(k)}
    assert differ == {"runtime.nproc_per_node", "tracking.experiment"}
    # the ranks' sharded evaluation, summed, is the whole test set's accuracy of the model rank 0 saved
    from aplab.config import RunConfig, apply
    from aplab.config.resolve import resolve
    from aplab.train.prepare import make_batches, prepare_data
    from aplab.train.runtime import select_runtime

    model = torch.load(tmp_path / "runs" / "ddp" / ddp.tags[T.CONFIG_HASH] / "model.pt", weights_only=False).eval()
    cfg = RunConfig()
    for key, value in {"data.name": "digits", "loss.name": "nce+rce", "noise.spec": "symmetric:0.4"}.items():
        apply(cfg, key, value)
    cfg = resolve(cfg)
    _, _, test = make_batches(prepare_data(cfg), cfg, select_runtime(cfg.runtime))
    with torch.no_grad():
        correct = sum(int((model(batch.images).argmax(1) == batch.labels).sum()) for batch in test)
    assert correct / len(test) == pytest.approx(ddp.metrics[M.TEST_ACC_LAST], abs=1e-12)


def test_train_in_process_launches_the_ranks_relays_epochs_and_resumes_after_an_interrupt(small_run, tmp_path):
    from aplab.tracking import make_tracker
    from aplab.train import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = small_run(**{"runtime.nproc_per_node": 2, "optim.epochs": 3, "tracking.uri": uri})
    seen = []

    def stop_after_2(epoch, metrics):
        seen.append((epoch, metrics[M.TEST_ACC]))
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_epoch=stop_after_2, extra_tags={"cell": "c1"})
    assert [epoch for epoch, _ in seen] == [1, 2]
    tracker = make_tracker(uri)
    (killed,) = tracker.find_runs("aplab")
    assert killed.status == "KILLED" and killed.tags["cell"] == "c1"
    result = train(cfg, progress=False, on_epoch=lambda epoch, metrics: seen.append((epoch, metrics[M.TEST_ACC])))
    assert result.status == "FINISHED" and result.run_id == killed.run_id
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert [row[M.TEST_ACC] for row in result.history] == [acc for _, acc in seen]
    (run,) = tracker.find_runs("aplab")
    assert run.status == "FINISHED" and [s for s, _ in tracker.metric_history(run.run_id, M.TRAIN_LOSS)] == [1, 2, 3]


RESUMABLE = [*DIGITS, "--epochs", "6", "--nproc-per-node", "2", "--set", "optim.batch_size=64"]


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["launcher", "rank"])
def test_a_sigkilled_ddp_run_stops_every_rank_and_resumes_to_the_uninterrupted_result(tmp_path, victim):
    import psutil

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command, env = aplab_command(*RESUMABLE, "--no-progress", "--tracking-uri", uri,
                                 "--workdir", str(tmp_path / "runs")), aplab_env()
    process = run_until(command, env, tmp_path, "epoch   3/6")  # rank 0's epoch lines, after each checkpoint
    children = psutil.Process(process.pid).children(recursive=True)
    ranks = [p for p in children if "spawn_main" in " ".join(p.cmdline())]  # the elastic agent spawns the ranks
    assert len(ranks) == 2
    (ranks[-1] if victim == "rank" else process).send_signal(signal.SIGKILL)
    rest = process.stdout.read()
    code = process.wait(timeout=120)
    if victim == "rank":  # the launcher lives on: the agent stopped rank 0, the CLI says so in one line, exit 1
        errors = [line for line in rest.splitlines() if line.startswith("aplab: error:")]
        assert code == 1 and len(errors) == 1 and "run the same command again" in errors[0], rest
    else:
        assert code == -signal.SIGKILL
    gone, alive = psutil.wait_procs(ranks, timeout=120)  # no rank outlives the group
    assert not alive

    straight = aplab_command(*RESUMABLE, "--no-progress", "--tracking-uri", uri, "--workdir",
                             str(tmp_path / "straight"), "--experiment", "straight")
    assert_resumes_to_the_uninterrupted_result(command, straight, env, tmp_path, uri, epochs=6)


@pytest.mark.slow
def test_a_checkpoint_of_two_ranks_resumes_in_one_process_into_the_same_run(small_run, tmp_path):
    from aplab.tracking import make_tracker
    from aplab.train import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = small_run(**{"runtime.nproc_per_node": 2, "optim.epochs": 3, "tracking.uri": uri})
    first: list[tuple[int, float]] = []

    def stop_after_2(epoch, metrics):
        first.append((epoch, metrics[M.TRAIN_LOSS]))
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_epoch=stop_after_2)
    tracker = make_tracker(uri)
    (killed,) = tracker.find_runs("aplab")
    assert killed.status == "KILLED" and [epoch for epoch, _ in first] == [1, 2]  # checkpointed at epoch 2
    alone = small_run(**{"runtime.nproc_per_node": 1, "optim.epochs": 3, "tracking.uri": uri})  # same config hash
    second: list[int] = []
    result = train(alone, progress=False, on_epoch=lambda epoch, metrics: second.append(epoch))
    assert second == [3]  # it trained on from the checkpoint: epochs 1 and 2 were not trained again
    (run,) = tracker.find_runs("aplab")
    assert result.status == "FINISHED" and result.run_id == run.run_id == killed.run_id and run.status == "FINISHED"
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    # the history up to the checkpoint is the two ranks' (from the checkpoint), the tracked run has each epoch once
    assert [(row["epoch"], row[M.TRAIN_LOSS]) for row in result.history[:2]] == first
    assert [step for step, _ in tracker.metric_history(run.run_id, M.TRAIN_LOSS)] == [1, 2, 3]
    assert result.summary[M.TEST_ACC_LAST] > 0.5  # and the model learnt (10 classes: chance is 0.1)


@pytest.mark.slow
def test_torchrun_starts_the_ranks_of_one_run(tmp_path):
    from aplab.tracking import make_tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command, env = aplab_command(*DIGITS, "--epochs", "2", "--no-progress", "--tracking-uri", uri,
                                 "--workdir", str(tmp_path / "runs")), aplab_env()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *command[1:]]
    done = subprocess.run(torchrun, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("finished: run ") == 1  # rank 1 prints nothing
    (run,) = make_tracker(uri).find_runs("aplab")
    assert run.status == "FINISHED" and run.tags[T.WORLD_SIZE] == "2" and run.tags[T.BACKEND] == "gloo"


def test_a_pipeline_trains_a_distributed_cell_as_one_run(tmp_path, monkeypatch):
    """A cell with runtime.nproc_per_node = 2 (one cell on N GPUs; gloo here) is one run of two ranks."""
    from aplab.tracking import make_tracker

    monkeypatch.chdir(tmp_path)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: ddp\nexperiment: ddp\noverrides: {optim.epochs: 2, runtime.nproc_per_node: 2, "
                        "tracking.system_metrics: false}\nmatrix:\n  dataset: [digits]\n  noise: [symmetric:0.4]\n"
                        "  loss: [nce+rce]\n  seed: [0]\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["pipeline", "run", str(pipeline), "--tracking-uri", uri, "--workdir", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    (run,) = make_tracker(uri).find_runs("ddp")
    assert run.status == "FINISHED" and run.tags[T.WORLD_SIZE] == "2" and run.tags[T.PIPELINE] == "ddp"
    assert [s for s, _ in make_tracker(uri).metric_history(run.run_id, M.TEST_ACC)] == [1, 2]
