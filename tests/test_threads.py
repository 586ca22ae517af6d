"""A run's CPU threads (issue 24, item 1): the cores it may use (affinity, Slurm's allocation) that are free,
runtime.threads / --threads when given, recorded as a tag, and the config hash unchanged by the field."""

from __future__ import annotations

import os

import pytest

from aplab.config import config_hash, from_flat
from aplab.config.resolve import resolve
from aplab.errors import ConfigError
from aplab.train.threads import allowed_cores, choose_threads, free_cores, read_cpu_times

AFFINITY = len(os.sched_getaffinity(0))


def test_a_core_counts_as_free_when_idle_at_least_half_of_the_sample():
    before = {0: (100, 200), 1: (100, 200), 2: (100, 200)}
    # core 0: 90 of 100 jiffies idle; core 1: 10 of 100; core 2: exactly half
    after = {0: (190, 300), 1: (110, 300), 2: (150, 300)}
    assert free_cores(before, after, {0, 1, 2}) == 2
    assert free_cores(before, after, {1}) == 0
    assert free_cores(before, after, {0, 7}) == 2  # a core missing from /proc/stat: assumed free


def test_proc_stat_is_read_per_core(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 1 2 3 40 5 6 7 8 0 0\ncpu1 10 0 0 20 0 0 0 0 0 0\nintr 5\n")
    # idle = idle + iowait; total = the first eight fields
    assert read_cpu_times(stat) == {0: (45, 72), 1: (20, 30)}
    assert read_cpu_times(tmp_path / "missing") == {}


def test_slurm_allocation_caps_the_affinity():
    assert allowed_cores({}) == AFFINITY
    assert allowed_cores({"SLURM_CPUS_PER_TASK": "1", "SLURM_CPUS_ON_NODE": "64"}) == 1
    assert allowed_cores({"SLURM_CPUS_ON_NODE": "1"}) == 1
    assert allowed_cores({"SLURM_CPUS_PER_TASK": str(AFFINITY + 50)}) == AFFINITY
    assert allowed_cores({"SLURM_CPUS_PER_TASK": "garbage"}) == AFFINITY


def test_auto_takes_the_free_cores_within_the_ceiling_and_the_allocation():
    assert choose_threads(None, ceiling=64, environ={}, free=lambda cores: 0).threads == 1
    assert choose_threads(None, ceiling=64, environ={}, free=lambda cores: 1).threads == 1
    assert choose_threads(None, ceiling=64, environ={}, free=lambda cores: len(cores)).threads == AFFINITY
    assert choose_threads(None, ceiling=1, environ={}, free=lambda cores: len(cores)).threads == 1
    slurm = {"SLURM_CPUS_PER_TASK": "1"}
    assert choose_threads(None, ceiling=64, environ=slurm, free=lambda cores: len(cores)).threads == 1


def test_an_explicit_count_wins_and_omp_num_threads_is_respected():
    never = lambda cores: pytest.fail("no sampling with an explicit count")  # noqa: E731
    assert choose_threads(3, ceiling=1, environ={"OMP_NUM_THREADS": "2"}, free=never).threads == 3
    choice = choose_threads(None, ceiling=64, environ={"OMP_NUM_THREADS": "2"}, free=never)
    assert (choice.threads, choice.reason) == (2, "OMP_NUM_THREADS")
    # a pipeline worker's share (its ceiling) still holds under OMP_NUM_THREADS, as before threads were chosen
    assert choose_threads(None, ceiling=1, environ={"OMP_NUM_THREADS": "4"}, free=never).threads == 1


def test_threads_is_not_part_of_the_run_identity():
    plain = config_hash(resolve(from_flat({})))
    assert config_hash(resolve(from_flat({"runtime.threads": 1}))) == plain
    assert config_hash(resolve(from_flat({"runtime.threads": 7}))) == plain


def test_threads_below_one_is_one_clear_line():
    with pytest.raises(ConfigError) as err:
        resolve(from_flat({"runtime.threads": 0}))
    assert str(err.value).startswith("runtime.threads=0") and "\n" not in str(err.value)


def test_a_run_computes_with_the_threads_asked_for_and_records_them(small_run):
    import torch

    from aplab.keys import T
    from aplab.tracking import MemoryTracker
    from aplab.train import train

    before = torch.get_num_threads()
    tracker = MemoryTracker()
    try:
        result = train(small_run(**{"runtime.threads": 1, "optim.epochs": 1}), tracker=tracker, progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    run = tracker.runs[result.run_id]
    assert run.tags[T.THREADS] == "1" and run.params["runtime.threads"] in (1, "1")
