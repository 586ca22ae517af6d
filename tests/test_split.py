"""stratified_split: exact per-class counts, a partition of the indices, pure and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from aplab.data.split import stratified_split
from aplab.errors import ConfigError


def _labels(sizes: dict[int, int], seed: int = 0) -> np.ndarray:
    """Shuffled labels with the given class sizes (class ids need not be contiguous)."""
    labels = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in sizes.items()])
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize(
    ("fraction", "sizes", "expected_val"),
    [
        # 0.2 * n rounded half up: 10 -> 2, 7 -> 1.4 -> 1, 3 -> 0.6 -> 1, 1 -> 0.2 -> 0, 25 -> 5
        (0.2, {0: 10, 1: 7, 2: 3, 3: 1, 4: 25}, {0: 2, 1: 1, 2: 1, 3: 0, 4: 5}),
        # halves round up: 5 -> 2.5 -> 3, 3 -> 1.5 -> 2, 1 -> 0.5 -> 1, 4 -> 2
        (0.5, {7: 5, 42: 3, -1: 1, 3: 4}, {7: 3, 42: 2, -1: 1, 3: 2}),
        (0.0, {0: 4, 1: 6}, {0: 0, 1: 0}),
    ],
)
def test_per_class_validation_counts_are_exact(fraction, sizes, expected_val):
    labels = _labels(sizes)
    train_idx, val_idx = stratified_split(labels, fraction, seed=3)
    for c, n in sizes.items():
        assert int((labels[val_idx] == c).sum()) == expected_val[c], c
        assert int((labels[train_idx] == c).sum()) == n - expected_val[c], c


def test_partition_is_sorted_int64_disjoint_and_covering():
    labels = _labels({0: 50, 1: 31, 2: 19, 5: 100}, seed=1)
    train_idx, val_idx = stratified_split(labels, 0.2, seed=0)
    for idx in (train_idx, val_idx):
        assert idx.dtype == np.int64
        assert np.all(np.diff(idx) > 0)  # strictly increasing: sorted and no repeats
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(labels)))


def test_zero_fraction_gives_empty_validation():
    labels = _labels({0: 5, 1: 5})
    train_idx, val_idx = stratified_split(labels, 0.0, seed=0)
    assert val_idx.size == 0 and val_idx.dtype == np.int64
    assert np.array_equal(train_idx, np.arange(10))


def test_empty_labels():
    train_idx, val_idx = stratified_split(np.array([], dtype=np.int64), 0.2, seed=0)
    assert train_idx.size == 0 and val_idx.size == 0


def test_same_seed_same_split_different_seed_different():
    labels = _labels({0: 200, 1: 200, 2: 200})
    a = stratified_split(labels, 0.2, seed=7)
    b = stratified_split(labels, 0.2, seed=7)
    c = stratified_split(labels, 0.2, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_selection_within_a_class_is_uniform():
    # One class of 10, 2 go to validation: over many seeds each sample is chosen ~ 2/10 of the time.
    labels = np.zeros(10, dtype=np.int64)
    hits = np.zeros(10)
    trials = 2000
    for seed in range(trials):
        hits[stratified_split(labels, 0.2, seed=seed)[1]] += 1
    assert hits.sum() == 2 * trials
    # binomial(2000, 0.2): mean 400, sd ~ 17.9; 5 sd either side
    assert np.all(np.abs(hits - 400) < 90), hits


def test_global_random_state_is_untouched():
    np.random.seed(1234)
    before = np.random.get_state()
    stratified_split(_labels({0: 30, 1: 30}), 0.3, seed=5)
    after = np.random.get_state()
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1]) and before[2:] == after[2:]


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.2", None, True])
def test_bad_fraction_names_the_field(fraction):
    with pytest.raises(ConfigError) as info:
        stratified_split(np.zeros(10, dtype=np.int64), fraction, seed=0)
    assert info.value.field == "data.val_fraction"
    assert "data.val_fraction" in str(info.value) and "[0, 1)" in str(info.value)


def test_labels_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        stratified_split(np.zeros((3, 2), dtype=np.int64), 0.2, seed=0)
