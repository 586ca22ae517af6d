"""The DataLoader path (WebVision): an epoch's order and augmentation follow from the run's generator
alone, so a run resumed from a checkpoint repeats the uninterrupted run's epochs."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch
from PIL import Image

from aplab.data.files import file_loader
from aplab.distributed import Rank


def random_transform(image):
    """Stands for the random crops and jitter: a draw from the worker's torch RNG, as torchvision's are."""
    return torch.rand(2)


def epoch(loader):
    return [(images.clone(), index.clone()) for images, index in loader]


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))


def image_files(folder, count: int = 12) -> list[str]:
    paths = []
    for i in range(count):
        paths.append(str(folder / f"{i}.jpg"))
        Image.fromarray(np.full((4, 4, 3), 10 * i, dtype=np.uint8)).save(paths[-1], format="JPEG")
    return paths


def test_an_epoch_depends_only_on_the_generator_state_first_later_or_resumed(tmp_path):
    paths = image_files(tmp_path)

    running = file_loader(paths, np.arange(12), random_transform, 4, shuffle=True, seed=5, workers=2)
    first = epoch(running)
    state = running.generator.get_state()  # what a checkpoint after epoch 1 holds
    second = epoch(running)

    running.generator.manual_seed(5)
    assert same(epoch(running), first)  # a later epoch from the seed's state: the first epoch again
    resumed = file_loader(paths, np.arange(12), random_transform, 4, shuffle=True, seed=0, workers=2)
    resumed.generator.set_state(state)
    assert same(epoch(resumed), second)  # a fresh loader (a resumed run) from the checkpointed state
    assert not same(first, second)  # and the epochs do differ from each other


def test_each_rank_draws_its_own_augmentations_and_the_same_again_from_the_same_state(tmp_path):
    paths = image_files(tmp_path)

    def draws(rank: int) -> torch.Tensor:  # the draws of this rank's samples, in the order it loads them
        loader = file_loader(paths, np.arange(12), random_transform, 4, shuffle=True, seed=5, workers=1,
                             rank=Rank(rank, 2))
        return torch.cat([images for images, _ in epoch(loader)])

    first, second = draws(0), draws(1)
    assert first.shape == second.shape == (6, 2)
    assert not torch.isclose(first, second).any()  # the ranks' workers share the generator's seed, not its draws
    assert torch.equal(draws(1), second)  # and a rank's draws follow from the generator's state


def requeue_signal_ignored(image) -> torch.Tensor:
    return torch.tensor([signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN])


@pytest.mark.parametrize("rank", [0, 1])
def test_workers_ignore_slurms_requeue_signal(tmp_path, rank):
    loader = file_loader(image_files(tmp_path, 4), np.arange(4), requeue_signal_ignored, 2, shuffle=False, seed=0,
                         workers=1, rank=Rank(rank, 2))
    assert [flags.tolist() for flags, _ in loader] == [[[True]], [[True]]]
