"""Label noise as pure functions: (clean labels, spec, classes, seed) -> noisy labels + transition matrix.

``corrupt(labels, "symmetric:0.4", num_classes=10, seed=0)`` never reads or changes global random
state: the same inputs and seed give the same labels on any machine (NumPy's PCG64, or the legacy
MT19937 of ``np.random.RandomState(seed)`` under ``sampler="official"``). ``human:<set>`` reads a
published CIFAR-N label file; ``human_like:<set>`` draws from that set's transition matrix.
"""

from __future__ import annotations

from .corrupt import SAMPLERS, NoisyLabels, available, check_config, corrupt, required_dataset, transition_matrix
from .human import HUMAN_SETS
from .maps import ASYMMETRIC_MAPS, CIFAR100_COARSE
from .spec import NoiseSpec, parse_spec
from .training_set import corrupt_training_set

__all__ = ["ASYMMETRIC_MAPS", "CIFAR100_COARSE", "HUMAN_SETS", "SAMPLERS", "NoiseSpec", "NoisyLabels", "available",
           "check_config", "corrupt", "corrupt_training_set", "parse_spec", "required_dataset", "transition_matrix"]
