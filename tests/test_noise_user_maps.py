"""Asymmetric noise with a map of the user's own (``asymmetric:<rate>:map=a>b,...``) on any dataset, each map
checked with one-line errors; plain ``asymmetric`` on a dataset without a map names the syntax."""

from __future__ import annotations

import numpy as np
import pytest

from aplab import noise
from aplab.config import from_flat
from aplab.config.resolve import resolve
from aplab.errors import ConfigError

CLEAN = np.repeat(np.arange(10), 20)  # 20 samples of each of 10 classes


def test_a_user_map_flips_exactly_its_sources_to_its_targets():
    result = noise.corrupt(CLEAN, "asymmetric:0.4:map=0>6,2>4,5>7", num_classes=10, seed=3)
    expected = np.eye(10)
    for source, target in ((0, 6), (2, 4), (5, 7)):
        expected[source, source], expected[source, target] = 0.6, 0.4  # int(0.4 * 20) = 8 of 20 flipped
    assert np.allclose(result.transition, expected)
    assert result.rate == pytest.approx(3 * 8 / 200)


def test_a_user_map_is_written_back_in_one_canonical_form():
    assert noise.check_config("asymmetric:0.2:map=5>7, 0>6", "fashion_mnist") == "asymmetric:0.2:map=0>6,5>7"


def test_a_user_map_works_on_a_dataset_that_has_its_own_and_through_a_run_config():
    cfg = resolve(from_flat({"data.name": "fashion_mnist", "noise.spec": "asymmetric:0.4:map=9>7,7>5"}))
    assert cfg.noise.spec == "asymmetric:0.4:map=7>5,9>7"
    mnist_own = noise.corrupt(CLEAN, "asymmetric:0.4:map=1>7", num_classes=10, seed=0, dataset="mnist")
    assert set(np.flatnonzero(mnist_own.flipped) // 20) == {1}  # only class 1 flips, not MNIST's own map


@pytest.mark.parametrize("spec, fragment", [
    ("asymmetric:0.4:map=3>3", "no class maps to itself"),
    ("asymmetric:0.4:map=0>6,0>5", "class 0 is already mapped to 6"),
    ("asymmetric:0.4:map=0-6", "<source>><target>"),
    ("asymmetric:0.4:map=a>b", "<source>><target>"),
    ("asymmetric:0.4:map=", "<source>><target>"),
    ("asymmetric:0.4:map=\u00b2>1", "<source>><target>"),
])
def test_a_malformed_map_is_one_line_naming_the_pair(spec, fragment):
    with pytest.raises(ConfigError) as info:
        noise.check_config(spec, "fashion_mnist")
    assert info.value.field == "noise.spec" and fragment in str(info.value) and "\n" not in str(info.value)


def test_a_class_outside_the_dataset_is_one_line():
    with pytest.raises(ConfigError, match=r"'0>10'.*class indices in \[0, 10\)"):
        noise.corrupt(CLEAN, "asymmetric:0.4:map=0>10", num_classes=10, seed=0)


def test_plain_asymmetric_without_a_map_names_the_syntax():
    with pytest.raises(ConfigError) as info:
        resolve(from_flat({"data.name": "fashion_mnist", "noise.spec": "asymmetric:0.4"}))
    assert info.value.field == "noise.spec" and "map=<source>><target>" in str(info.value)
    assert "'fashion_mnist'" in str(info.value)
    assert resolve(from_flat({"data.name": "mnist", "noise.spec": "asymmetric:0.4"})).noise.spec == "asymmetric:0.4"


def test_the_official_sampler_refuses_a_user_map():
    with pytest.raises(ConfigError, match="noise.sampler"):
        noise.check_config("asymmetric:0.4:map=0>6", "mnist", sampler="official")


@pytest.mark.parametrize("spec", ["symmetric:0.4", "pairflip:0.4", "instance:0.4"])
def test_the_other_kinds_run_on_fashion_mnist_configs(spec):
    cfg = resolve(from_flat({"data.name": "fashion_mnist", "noise.spec": spec}))
    assert cfg.noise.spec == spec
    features = np.random.default_rng(0).normal(size=(len(CLEAN), 16))
    result = noise.corrupt(CLEAN, spec, num_classes=10, seed=0, dataset="fashion_mnist", features=features)
    assert 0.3 < result.rate <= 0.4 + 1e-9


def test_the_official_symmetric_sampler_runs_on_fashion_mnist():
    cfg = resolve(from_flat({"data.name": "fashion_mnist", "noise.spec": "symmetric:0.4", "noise.sampler": "official"}))
    result = noise.corrupt(CLEAN, cfg.noise.spec, num_classes=10, seed=0, dataset="fashion_mnist", sampler="official")
    assert result.rate == pytest.approx(0.4)  # int(int(0.4 * 200) / 10) = 8 per class, each to another class


def test_aplab_noise_names_its_plot_without_the_maps_shell_characters(tmp_path, capsys):
    from aplab.cli.command import main

    assert main(["noise", "digits", "asymmetric:0.3:map=0>6,2>4", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["transition-digits-asymmetric_0.3_map=0_6_2_4-s0.png"]
