"""One run on several processes (DistributedDataParallel, gloo on CPU): the arithmetic of sharing batches,
gradients equal to the global batch's, one tracked run, resume after a SIGKILL, bad input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from aplab.cli import main
from aplab.distributed import Rank, split_bounds
from aplab.names import M, T

TIMING = {M.EPOCH_SECONDS, M.IMAGES_PER_SECOND}


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


def test_a_global_batch_smaller_than_the_world_is_left_for_the_next_epoch():
    # 23 samples in batches of 8: the last global batch has 7, fewer than 8 ranks could share
    assert [b.global_size for b in device_batches(Rank(0, 8))] == [8, 8]
    assert [b.global_size for b in device_batches(Rank(0, 7))] == [8, 8, 7]


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


def test_evaluation_shards_cover_the_set_once_without_padding():
    from aplab.train.prepare import shard

    idx = np.arange(100, 111)  # 11 samples on 3 ranks: 3 + 4 + 4, none twice, none padded
    parts = [shard(idx, Rank(r, 3)) for r in range(3)]
    assert np.array_equal(np.concatenate(parts), idx)


# -- gradients, two gloo processes ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
