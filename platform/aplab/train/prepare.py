"""The one-way data flow of a run: dataset source -> noise -> stratified split -> device batches."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from .. import noise
from ..config import RunConfig
from ..data import AUGMENTATIONS, Dataset, ImageFiles, ImageTensors, load_dataset, stratified_split
from ..data.files import FILE_TRANSFORMS, evaluation_transform
from ..data.device_transforms import DEVICE_FILE_TRANSFORMS, EvaluationOnDevice
from ..distributed import SINGLE, Rank, split_bounds
from .batches import DeviceBatches, FileBatches
from .runtime import Runtime


@dataclass(frozen=True)
class PreparedData:
    """Clean data, its noisy training labels, and the train/validation split of the noisy set."""

    dataset: Dataset
    noisy: noise.NoisyLabels
    train_idx: np.ndarray
    val_idx: np.ndarray
    clean_val: bool

    @property
    def labels_digest(self) -> str:
        """The identity of the noisy training set: a hash of its labels."""
        return labels_digest(self.noisy.labels)


def labels_digest(labels: np.ndarray) -> str:
    """The identity of a labelled split (a dataset input of the run): a hash of its labels."""
    return hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()[:16]


def prepare_data(cfg: RunConfig, dataset: Dataset | None = None) -> PreparedData:
    """Load the dataset (unless given: a stack's members share it), corrupt its training labels with the run's
    seed, split off validation."""
    dataset = dataset or load_dataset(cfg.data.name, cfg.data.data_dir, download=cfg.data.download)
    noisy = noise.corrupt_training_set(dataset, cfg.noise.spec, seed=cfg.runtime.seed, data_dir=cfg.data.data_dir,
                                       file=cfg.noise.file, sampler=cfg.noise.sampler)
    train_idx, val_idx = stratified_split(noisy.labels, cfg.data.val_fraction, seed=cfg.runtime.seed)
    return PreparedData(dataset, noisy, train_idx, val_idx, cfg.data.clean_val)


def shard(idx: np.ndarray, rank: Rank) -> np.ndarray:
    """Rank's contiguous part of an evaluation set: the ranks' parts cover it once, with no padding."""
    return idx[slice(*split_bounds(len(idx), rank.world_size, rank.rank))]


def make_batches(data: PreparedData, cfg: RunConfig, runtime: Runtime, rank: Rank = SINGLE):
    """Train (augmented, shuffled), validation and test batches: device-resident, or read from files.

    Distributed, training batches are this rank's slices of the global batches and the evaluation sets
    this rank's shard (the engine sums the ranks' counts)."""
    train_set, test_set = data.dataset.train, data.dataset.test
    if isinstance(train_set, ImageFiles):
        return make_file_batches(data, cfg, runtime, rank)
    assert isinstance(test_set, ImageTensors)
    clean = torch.from_numpy(train_set.labels)
    noisy = torch.from_numpy(data.noisy.labels)
    flipped = torch.from_numpy(data.noisy.flipped)
    common = dict(mean=data.dataset.mean, std=data.dataset.std, device=runtime.device,
                  channels_last=runtime.channels_last, dtype=runtime.dtype)

    def subset(idx: np.ndarray, labels: torch.Tensor, **kw) -> DeviceBatches:
        index = torch.from_numpy(idx)
        return DeviceBatches(train_set.images[index], labels[index], clean[index], flipped[index], **common, **kw)

    augment = AUGMENTATIONS.get(cfg.data.augment, "data.augment")
    train = subset(data.train_idx, noisy, batch_size=cfg.optim.batch_size, augment=augment, shuffle=True, rank=rank)
    val = None
    if data.val_idx.size:
        val = subset(shard(data.val_idx, rank), clean if data.clean_val else noisy,
                     batch_size=cfg.runtime.eval_batch_size)
    test_idx = torch.from_numpy(shard(np.arange(len(test_set.labels)), rank))
    test_labels = torch.from_numpy(test_set.labels)[test_idx]
    test = DeviceBatches(test_set.images[test_idx], test_labels, test_labels,
                         torch.zeros_like(test_labels, dtype=torch.bool), batch_size=cfg.runtime.eval_batch_size,
                         **common)
    return train, val, test


def make_file_batches(data: PreparedData, cfg: RunConfig, runtime: Runtime, rank: Rank = SINGLE):
    """DataLoader-backed batches for datasets read from disk (WebVision)."""
    dataset = data.dataset
    train_set, test_set = dataset.train, dataset.test
    assert isinstance(train_set, ImageFiles) and isinstance(test_set, ImageFiles)
    size, stats = dataset.image_size, (dataset.mean, dataset.std)
    clean = torch.from_numpy(train_set.labels)
    noisy = torch.from_numpy(data.noisy.labels)
    flipped = torch.from_numpy(data.noisy.flipped)
    decode = cfg.runtime.decode  # gpu: the workers read the files, the device decodes and transforms them
    train_transforms, evaluation = ((DEVICE_FILE_TRANSFORMS, EvaluationOnDevice(size, *stats)) if decode == "gpu"
                                    else (FILE_TRANSFORMS, evaluation_transform(size, *stats)))

    def subset(idx, labels, transform, batch_size, shuffle):
        return FileBatches(train_set.paths, idx, labels[idx], clean[idx], flipped[idx], transform, batch_size,
                           runtime.device, shuffle=shuffle, channels_last=runtime.channels_last,
                           rank=rank if shuffle else SINGLE, decode=decode)

    train = subset(data.train_idx, noisy, train_transforms.get(cfg.data.augment, "data.augment")(size, *stats),
                   cfg.optim.batch_size, True)
    val = subset(shard(data.val_idx, rank), clean if data.clean_val else noisy, evaluation,
                 cfg.runtime.eval_batch_size, False) if data.val_idx.size else None
    test_idx = shard(np.arange(len(test_set.paths)), rank)
    test_labels = torch.from_numpy(test_set.labels)[test_idx]
    test = FileBatches(test_set.paths, test_idx, test_labels, test_labels,
                       torch.zeros_like(test_labels, dtype=torch.bool), evaluation, cfg.runtime.eval_batch_size,
                       runtime.device, channels_last=runtime.channels_last, decode=decode)
    return train, val, test
