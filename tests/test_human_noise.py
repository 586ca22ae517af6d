"""Human label noise (CIFAR-10N / CIFAR-100N) from label files in the published format, built here offline."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from aplab import noise
from aplab.errors import ConfigError
from aplab.keys import P_REALISED_NOISE_RATE

CIFAR10_KEYS = ("aggre_label", "worse_label", "random_label1", "random_label2", "random_label3")


# ----------------------------------------------------------------------------- builders (also used by test_noise_cli)


def _pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root: Path, per_class: int = 10, seed: int = 0) -> np.ndarray:
    """A CIFAR-10 python release in miniature (5 train batches, a test batch, meta); returns the train labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10), per_class))
    folder = root / "cifar-10-batches-py"
    for i, part in enumerate(np.array_split(labels, 5), start=1):
        data = rng.integers(0, 256, size=(part.size, 3072), dtype=np.uint8)
        _pickle(folder / f"data_batch_{i}", {"labels": [int(v) for v in part], "data": data})
    _pickle(folder / "test_batch", {"labels": list(range(10)), "data": rng.integers(0, 256, (10, 3072), dtype=np.uint8)})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return labels


def write_cifar100(root: Path, per_class: int = 2, seed: int = 0) -> np.ndarray:
    """A CIFAR-100 python release in miniature (train, test, meta); returns the fine train labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(100), per_class))
    folder = root / "cifar-100-python"
    for split, fine in (("train", labels), ("test", np.arange(100))):
        data = rng.integers(0, 256, size=(fine.size, 3072), dtype=np.uint8)
        _pickle(folder / split, {"fine_labels": [int(v) for v in fine], "data": data,
                                 "coarse_labels": [int(noise.CIFAR100_COARSE[v]) for v in fine]})
    _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                              "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return labels


def flip_first(clean: np.ndarray, count: int, num_classes: int) -> np.ndarray:
    """``clean`` with its first ``count`` labels moved to the next class: exactly ``count`` wrong labels."""
    noisy = clean.copy()
    noisy[:count] = (noisy[:count] + 1) % num_classes
    return noisy


def cifar10_human_labels(clean: np.ndarray) -> dict[str, np.ndarray]:
    """The published CIFAR-10N keys: aggre wrong on 9 labels, worst on 40, random1..3 on 17, 18, 18."""
    counts = {"aggre_label": 9, "worse_label": 40, "random_label1": 17, "random_label2": 18, "random_label3": 18}
    return {"clean_label": clean.astype(np.int64),
            **{key: flip_first(clean, n, 10).astype(np.int64) for key, n in counts.items()}}


def write_human_file(path: Path, content: object, numpy1_names: bool = False) -> Path:
    """``torch.save`` as the CIFAR-N repository did; ``numpy1_names`` spells the globals as NumPy 1 wrote them."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(content, buffer)
    raw = buffer.getvalue()
    if numpy1_names:
        source, rewritten = zipfile.ZipFile(io.BytesIO(raw)), io.BytesIO()
        with zipfile.ZipFile(rewritten, "w") as target:
            for name in source.namelist():
                data = source.read(name)
                if name.endswith("data.pkl"):
                    assert b"numpy._core.multiarray" in data
                    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                target.writestr(name, data)
        raw = rewritten.getvalue()
    path.write_bytes(raw)
    return path


@pytest.fixture
def cifar10_n(tmp_path):
    """A data dir with miniature CIFAR-10 (100 images) and its CIFAR-10N file in the default place."""
    clean = write_cifar10(tmp_path)
    labels = cifar10_human_labels(clean)
    write_human_file(tmp_path / "cifar-n" / "CIFAR-10_human.pt", labels)
    return tmp_path, clean, labels


# ----------------------------------------------------------------------------- human:<set>


@pytest.mark.parametrize("name, key, wrong", [("aggre", "aggre_label", 9), ("rand1", "random_label1", 17),
                                              ("rand2", "random_label2", 18), ("rand3", "random_label3", 18),
                                              ("worst", "worse_label", 40)])
def test_human_set_is_read_as_published_and_recorded(cifar10_n, name, key, wrong):
    data_dir, clean, labels = cifar10_n
    result = noise.corrupt(clean, f"human:{name}", 10, seed=0, dataset="cifar10", data_dir=data_dir)
    np.testing.assert_array_equal(result.labels, labels[key])
    assert result.rate == wrong / 100
    path = data_dir / "cifar-n" / "CIFAR-10_human.pt"
    assert result.provenance == {"noise.human_labels": key, "noise.human_file": str(path),
                                 "noise.human_file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert str(result.spec) == f"human:{name}"


def test_human_set_ignores_the_seed_and_reads_noise_file_first(cifar10_n, tmp_path_factory):
    data_dir, clean, labels = cifar10_n
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "my-labels.pt"
    write_human_file(elsewhere, {**labels, "aggre_label": flip_first(clean, 3, 10)}, numpy1_names=True)
    default = noise.corrupt(clean, "human:aggre", 10, seed=1, dataset="cifar10", data_dir=data_dir)
    chosen = noise.corrupt(clean, "human:aggre", 10, seed=2, dataset="cifar10", data_dir=data_dir, file=elsewhere)
    assert default.rate == 0.09 and chosen.rate == 0.03
    assert chosen.provenance["noise.human_file"] == str(elsewhere)


def test_loading_registers_no_global_allow_list(cifar10_n):
    import torch

    data_dir, clean, _ = cifar10_n
    before = set(torch.serialization.get_safe_globals())  # a set: torch keeps them in one, in no stable order
    noise.corrupt(clean, "human:aggre", 10, seed=0, dataset="cifar10", data_dir=data_dir)
    assert set(torch.serialization.get_safe_globals()) == before
    assert np.ndarray not in before


def test_cifar100_noisy_set(tmp_path):
    clean = write_cifar100(tmp_path)
    content = {"clean_label": clean, "noisy_label": flip_first(clean, 80, 100),
               "clean_coarse_label": noise.CIFAR100_COARSE[clean], "noisy_coarse_label": noise.CIFAR100_COARSE[clean]}
    write_human_file(tmp_path / "cifar-n" / "CIFAR-100_human.pt", content)
    result = noise.corrupt(clean, "human:noisy", 100, seed=0, dataset="cifar100", data_dir=tmp_path)
    assert result.rate == 0.4 and result.provenance["noise.human_labels"] == "noisy_label"


class _Evil:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def _refusal(clean, data_dir, fragment, spec="human:aggre", dataset="cifar10"):
    with pytest.raises(ConfigError) as err:
        noise.corrupt(clean, spec, 10, seed=0, dataset=dataset, data_dir=data_dir)
    message = str(err.value)
    assert "\n" not in message and fragment in message
    return message


def test_missing_file_names_where_to_put_it(tmp_path):
    clean = write_cifar10(tmp_path)
    message = _refusal(clean, tmp_path, "CIFAR-10_human.pt")
    assert message.startswith(f"noise.file='{tmp_path / 'cifar-n' / 'CIFAR-10_human.pt'}' is not allowed")
    assert "noise.file" in message and "github.com/UCSC-REAL/cifar-10-100n" in message


@pytest.mark.parametrize("mangle, fragment", [
    (lambda labels: {k: v for k, v in labels.items() if k != "aggre_label"}, "no 'aggre_label' entry"),
    (lambda labels: {k: v for k, v in labels.items() if k != "clean_label"}, "no 'clean_label' entry"),
    (lambda labels: {**labels, "aggre_label": labels["aggre_label"][:-1]}, "'aggre_label' has 99 labels"),
    (lambda labels: {**labels, "aggre_label": labels["aggre_label"].astype(np.float64)}, "cannot be read"),
    (lambda labels: {**labels, "aggre_label": labels["aggre_label"] + 10}, "outside [0, 10)"),
    (lambda labels: {**labels, "aggre_label": labels["aggre_label"].reshape(10, 10)}, "not a 1-D integer array"),
    (lambda labels: {**labels, "clean_label": labels["clean_label"][::-1].copy()}, "misaligned"),
    (lambda labels: list(labels.values()), "holds a list"),
    (lambda labels: {**labels, "x": _Evil("SENTINEL")}, "cannot be read"),
])
def test_malformed_or_misaligned_files_are_one_line_refusals(cifar10_n, mangle, fragment):
    data_dir, clean, labels = cifar10_n
    sentinel = data_dir / "pwned"
    content = mangle(labels)
    if isinstance(content, dict) and "x" in content:
        content["x"] = _Evil(str(sentinel))
    path = write_human_file(data_dir / "cifar-n" / "CIFAR-10_human.pt", content)
    message = _refusal(clean, data_dir, fragment)
    assert message.startswith(f"noise.file='{path}'")
    assert not sentinel.exists()


def test_garbage_bytes_are_refused(cifar10_n):
    data_dir, clean, _ = cifar10_n
    (data_dir / "cifar-n" / "CIFAR-10_human.pt").write_bytes(b"not a torch file")
    _refusal(clean, data_dir, "cannot be read")


def test_human_set_on_another_dataset_is_refused(cifar10_n):
    data_dir, clean, _ = cifar10_n
    message = _refusal(clean, data_dir, "annotates cifar100, not cifar10", spec="human:noisy")
    assert message.startswith("noise.spec='human:noisy'") and "aggre" in message
    _refusal(clean, data_dir, "annotates cifar10, not digits", dataset="digits")


# ----------------------------------------------------------------------------- human_like:<set>


def test_human_like_keeps_the_sets_transition_matrix_and_rate_but_not_its_instances(cifar10_n):
    data_dir, clean, labels = cifar10_n
    human = noise.corrupt(clean, "human:worst", 10, seed=0, dataset="cifar10", data_dir=data_dir)
    like = [noise.corrupt(clean, "human_like:worst", 10, seed=s, dataset="cifar10", data_dir=data_dir) for s in (0, 1)]
    for result in like:
        np.testing.assert_array_equal(result.transition, human.transition)
        assert result.rate == human.rate == 0.4
        assert result.provenance == human.provenance
    # which samples carry the wrong labels depends on the seed, not on the image
    assert (like[0].labels != like[1].labels).any() and (like[0].labels != human.labels).any()
    again = noise.corrupt(clean, "human_like:worst", 10, seed=0, dataset="cifar10", data_dir=data_dir)
    np.testing.assert_array_equal(again.labels, like[0].labels)


# ----------------------------------------------------------------------------- runs and pipelines

ROOT = Path(__file__).resolve().parents[1]


def pipeline_cells(name: str, sets: list[str], keep_dataset: bool = False):
    """The cells of a shipped CIFAR-N pipeline; ``keep_dataset``: its smoke scale on its own dataset."""
    import dataclasses

    from aplab.pipeline.spec import expand, load_pipeline, scaled

    spec = load_pipeline(ROOT / "pipelines" / f"{name}.yaml")
    if keep_dataset:  # smoke (3 epochs, first seed, preset model) without the switch to digits
        spec = dataclasses.replace(scaled(spec, "smoke"), datasets=spec.datasets)
    return expand(scaled(spec, "full", sets))


@pytest.fixture
def user_data(cifar10_n, monkeypatch, tmp_path):
    """A user whose $APLAB_DATA holds CIFAR-10 and cifar-n/CIFAR-10_human.pt; runs write under tmp_path."""
    data_dir, clean, labels = cifar10_n
    monkeypatch.setenv("APLAB_DATA", str(data_dir))
    return data_dir, clean, labels, [f"tracking.workdir={tmp_path / 'runs'}", "tracking.system_metrics=false"]


def test_cifar10n_pipeline_follows_the_cifar_n_protocol():
    cells = pipeline_cells("cifar10n", [])
    assert len(cells) == 3 * 12 * 3  # label sets x (the paper's nine methods + three asymmetric losses) x seeds
    assert {c.config.noise.spec for c in cells} == {"human:aggre", "human:rand1", "human:worst"}
    for c in cells:
        o = c.config.optim
        assert (c.config.model.name, o.lr, o.momentum, o.weight_decay, o.batch_size, o.epochs) == (
            "resnet34", 0.1, 0.9, 5e-4, 128, 100)
        assert (o.schedule, o.step_size, o.lr_decay, o.nesterov, c.config.data.val_fraction) == ("step", 60, 0.1, False, 0.0)
    cifar100 = pipeline_cells("cifar100n", [])
    assert {c.config.noise.spec for c in cifar100} == {"human:noisy"} and len(cifar100) == 12 * 3


def test_a_cifar10n_cell_trains_on_the_human_labels(user_data):
    from aplab.tracking import MemoryTracker
    from aplab.train import train

    data_dir, clean, labels, sets = user_data
    # one epoch of the small CNN: this test is about the labels a run trains on
    cells = pipeline_cells("cifar10n", [*sets, "optim.epochs=1", "model.name=cnn8"])
    cell = next(c for c in cells if c.config.loss.name == "nce+rce" and c.config.noise.spec == "human:worst")
    tracker = MemoryTracker()
    result = train(cell.config, tracker=tracker, progress=False)
    run = tracker.runs[result.run_id]
    assert run.status == "FINISHED"
    assert float(run.params[P_REALISED_NOISE_RATE]) == 0.4  # the 40 wrong labels built into worse_label


def test_a_missing_human_file_fails_before_anything_is_created(user_data, tmp_path):
    from aplab.tracking import MemoryTracker
    from aplab.train import train

    data_dir, clean, labels, sets = user_data
    (data_dir / "cifar-n" / "CIFAR-10_human.pt").unlink()
    cell = pipeline_cells("cifar10n", [*sets, "optim.epochs=1", "model.name=cnn8"])[0]
    tracker = MemoryTracker()
    with pytest.raises(ConfigError, match=r"^noise.file=.*CIFAR-10_human.pt"):
        train(cell.config, tracker=tracker, progress=False)
    assert tracker.runs == {} and not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10n", "cifar100n"])
def test_cifar_n_pipelines_run_at_smoke_scale_on_cpu(name, user_data):
    from aplab.pipeline.runner import run_pipeline
    from aplab.tracking import MemoryTracker

    data_dir, clean, labels, sets = user_data
    if name == "cifar100n":
        clean = write_cifar100(data_dir)
        write_human_file(data_dir / "cifar-n" / "CIFAR-100_human.pt",
                         {"clean_label": clean, "noisy_label": flip_first(clean, 80, 100)})
    cells = pipeline_cells(name, [*sets, "runtime.device=cpu"], keep_dataset=True)
    tracker = MemoryTracker()
    run_pipeline(cells, name, tracker=tracker, progress=False)
    assert len(tracker.runs) == len(cells) == (36 if name == "cifar10n" else 12)
    assert {run.status for run in tracker.runs.values()} == {"FINISHED"}
