"""The DataLoader path (WebVision): an epoch's order and augmentation follow from the run's generator
alone, so a run resumed from a checkpoint repeats the uninterrupted run's epochs."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from aplab.data.files import file_loader


def random_transform(image):
    """Stands for the random crops and jitter: a draw from the worker's torch RNG, as torchvision's are."""
    return torch.rand(2)


def epoch(loader):
    return [(images.clone(), index.clone()) for images, index in loader]


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))


def test_an_epoch_depends_only_on_the_generator_state_first_later_or_resumed(tmp_path):
    paths = []
    for i in range(12):
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.fromarray(np.full((4, 4, 3), 10 * i, dtype=np.uint8)).save(paths[-1], format="JPEG")

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
