"""Noise applied to a dataset's training split: the one place that turns a loaded ``Dataset`` into noisy labels.

``aplab train`` (through ``train/prepare.py``) and ``aplab noise`` both call it, so the labels a user
inspects are the labels a run with the same dataset, spec, seed and sampler trains on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .spec import NoiseSpec

if TYPE_CHECKING:
    from ..data import Dataset
    from .corrupt import NoisyLabels


def corrupt_training_set(dataset: Dataset, spec: str | NoiseSpec, seed: int, *, data_dir: str | Path | None = None,
                         file: str | Path | None = None, sampler: str | None = None) -> NoisyLabels:
    """Corrupt ``dataset.train.labels`` by ``spec``; instance noise reads the pixels scaled to [0, 1] as features."""
    from ..data import ImageTensors
    from .corrupt import available, corrupt
    from .spec import parse_spec

    features = None
    if parse_spec(spec, available()).kind == "instance":
        if not isinstance(dataset.train, ImageTensors):
            raise ConfigError("noise.spec", str(spec), "a kind other than instance for a file-based dataset")
        features = dataset.train.images.reshape(len(dataset.train.labels), -1).float().numpy() / 255.0
    return corrupt(dataset.train.labels, spec, dataset.num_classes, seed=seed, dataset=dataset.name,
                   features=features, data_dir=data_dir, file=file, sampler=sampler)
