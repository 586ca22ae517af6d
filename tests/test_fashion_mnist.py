"""fashion_mnist: where its files are found (torchvision's layout, Debian's package), the IDX checks, and the
real files of ``apt-get install -y dataset-fashion-mnist`` (skipped, naming the package, where it is absent).

Published facts checked against the real files: 60,000 / 10,000 images, 6,000 / 1,000 per class, the
training set's mean 0.2860 and std 0.3530, and the labels TensorFlow's classification tutorial shows:
training image 0 is an ankle boot (9); test images 0, 1 and 12 are an ankle boot, a pullover and a sneaker.
"""

from __future__ import annotations

import fcntl
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import aplab.data.sources.fashion_mnist as fm
from aplab.data.sources import DOWNLOAD_LOCK, load_dataset
from aplab.errors import ConfigError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_package = pytest.mark.skipif(
    not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="needs Debian's dataset-fashion-mnist package (apt-get install -y dataset-fashion-mnist)")

SMALL = {"train-images-idx3-ubyte": (6, 28, 28), "train-labels-idx1-ubyte": (6,),
         "t10k-images-idx3-ubyte": (4, 28, 28), "t10k-labels-idx1-ubyte": (4,)}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX ubyte format written out: 0, 0, 0x08, ndim, big-endian uint32 dims, the bytes."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_tree(folder: Path, packed: bool, labels=(3, 1, 4, 1, 5, 9)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": np.array(labels, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": np.array([2, 7, 1, 8], dtype=np.uint8)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if packed:
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
        else:
            (folder / name).write_bytes(idx_bytes(array))
    return arrays


@pytest.fixture
def small(monkeypatch, tmp_path):
    """Small files instead of the real sizes (no checksums), a fake system folder, and no network."""
    import torchvision.datasets.mnist as tv_mnist

    def refuse(*args, **kwargs):
        raise RuntimeError("download attempted in a test\n(second line)")

    monkeypatch.setattr(fm, "FILES", {name: (shape, None) for name, shape in SMALL.items()})
    system = tmp_path / "system"
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (system,))
    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", refuse)
    return system


def one_line_error(call, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert message.startswith("data.data_dir=") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_the_packages_gzipped_files_are_read_in_place(small, tmp_path):
    arrays = write_tree(small, packed=True)
    data_dir = tmp_path / "data"
    ds = load_dataset("fashion_mnist", data_dir, download=False)
    assert np.array_equal(ds.train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert ds.train.labels.tolist() == [3, 1, 4, 1, 5, 9] and ds.test.labels.tolist() == [2, 7, 1, 8]
    assert ds.train.images.dtype == torch.uint8 and ds.train.images.shape == (6, 1, 28, 28)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot" and len(ds.class_names) == 10
    assert not data_dir.exists()  # nothing copied, nothing downloaded


def test_torchvisions_layout_comes_first(small, tmp_path):
    write_tree(small, packed=True)
    mine = write_tree(tmp_path / "FashionMNIST" / "raw", packed=False, labels=(0, 0, 0, 0, 0, 0))
    ds = load_dataset("fashion_mnist", tmp_path, download=False)
    assert ds.train.labels.tolist() == [0] * 6
    assert np.array_equal(ds.test.images[:, 0].numpy(), mine["t10k-images-idx3-ubyte"])


def test_nothing_found_names_both_places_and_the_package(small, tmp_path):
    one_line_error(lambda: load_dataset("fashion_mnist", tmp_path, download=False),
                   str(tmp_path / "FashionMNIST" / "raw"), str(small), "apt-get install -y dataset-fashion-mnist")


def test_a_download_runs_once_under_the_lock(small, tmp_path, monkeypatch):
    import torchvision.datasets as tv

    calls = []

    class FakeFashionMNIST:
        def __init__(self, root, train, download):
            with open(Path(root) / DOWNLOAD_LOCK, "a") as other:  # another process cannot take the lock
                with pytest.raises(BlockingIOError):
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            calls.append(download)
            write_tree(Path(root) / "FashionMNIST" / "raw", packed=False)

    monkeypatch.setattr(tv, "FashionMNIST", FakeFashionMNIST)
    first = load_dataset("fashion_mnist", tmp_path, download=True)
    again = load_dataset("fashion_mnist", tmp_path, download=True)
    assert calls == [True] and len(first.train.labels) == len(again.train.labels) == 6


def test_a_failed_download_is_one_line(small, tmp_path):
    one_line_error(lambda: load_dataset("fashion_mnist", tmp_path, download=True),
                   "could not download", "download attempted in a test (second line)")


@pytest.mark.parametrize("damage, fragment", [
    (lambda b: b[:-2], "holds 12 bytes, expected 14"),
    (lambda b: b"\x00\x00\x09\x01" + b[4:], "starts with 00000901, expected the IDX magic 00000801"),
    (lambda b: b[:4] + struct.pack(">I", 7) + b[8:], "declares shape (7,), expected (6,)"),
])
def test_a_damaged_file_is_one_line_naming_it(small, tmp_path, damage, fragment):
    write_tree(small, packed=True)
    path = small / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(damage(gzip.decompress(path.read_bytes()))))
    one_line_error(lambda: load_dataset("fashion_mnist", tmp_path, download=False), str(path), fragment)


def test_a_truncated_gzip_and_a_wrong_checksum_are_one_line(small, tmp_path, monkeypatch):
    write_tree(small, packed=True)
    path = small / "t10k-images-idx3-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    one_line_error(lambda: load_dataset("fashion_mnist", tmp_path, download=False), str(path), "cannot be read")
    path.write_bytes(good)
    monkeypatch.setitem(fm.FILES, "t10k-images-idx3-ubyte", ((4, 28, 28), "0" * 32))
    one_line_error(lambda: load_dataset("fashion_mnist", tmp_path, download=False), str(path),
                   "expected 00000000000000000000000000000000")


def test_labels_outside_the_ten_classes_are_one_line(small, tmp_path):
    write_tree(small, packed=True, labels=(3, 1, 4, 1, 5, 10))
    one_line_error(lambda: load_dataset("fashion_mnist", tmp_path, download=False), "outside [0, 10)")


# ----------------------------------------------------------------------------- the real files


@pytest.fixture(scope="module")
def real():
    return load_dataset("fashion_mnist", Path("/nonexistent-aplab-data"), download=False)


@needs_package
def test_the_real_files_hold_the_published_counts_and_labels(real):
    assert real.train.images.shape == (60000, 1, 28, 28) and real.test.images.shape == (10000, 1, 28, 28)
    assert np.bincount(real.train.labels).tolist() == [6000] * 10
    assert np.bincount(real.test.labels).tolist() == [1000] * 10
    assert real.train.labels[0] == 9
    assert (real.test.labels[0], real.test.labels[1], real.test.labels[12]) == (9, 2, 7)


@needs_package
def test_the_real_training_set_has_the_published_mean_and_std(real):
    pixels = real.train.images.to(torch.float64) / 255
    assert pixels.mean().item() == pytest.approx(0.2860, abs=5e-5)
    assert pixels.std().item() == pytest.approx(0.3530, abs=5e-5)
    assert real.mean == (0.2860,) and real.std == (0.3530,)


@needs_package
@pytest.mark.slow
def test_one_epoch_of_cnn4_on_real_data_learns(real):
    """One epoch on a class-balanced 12,000-image subset, with the preset's optimiser, evaluated on all
    10,000 test images: a model that learned nothing scores about 0.10; cnn4 reaches well over 0.7."""
    from aplab.config import from_flat
    from aplab.config.resolve import resolve
    from aplab.models import build_model

    torch.manual_seed(0)
    o = resolve(from_flat({"data.name": "fashion_mnist", "loss.name": "ce"})).optim
    subset = np.concatenate([np.flatnonzero(real.train.labels == c)[:1200] for c in range(10)])
    subset = subset[torch.randperm(len(subset)).numpy()]

    def normalise(images):
        return (images.float() / 255 - real.mean[0]) / real.std[0]

    model = build_model("cnn4", 10, 1, 28)
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                          weight_decay=o.weight_decay)
    images, labels = real.train.images[subset], torch.from_numpy(real.train.labels[subset])
    model.train()
    for start in range(0, len(subset), o.batch_size):
        x, y = normalise(images[start:start + o.batch_size]), labels[start:start + o.batch_size]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        opt.step()
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(normalise(real.test.images[i:i + 1000])).argmax(1) for i in range(0, 10000, 1000)])
    accuracy = (predicted.numpy() == real.test.labels).mean()
    assert accuracy > 0.7, accuracy


# ----------------------------------------------------------------------------- the pipeline


def test_the_pipeline_runs_table_2s_protocol_on_fashion_mnist():
    from aplab.pipeline.spec import expand, load_pipeline, scaled

    root = Path(__file__).resolve().parents[1] / "pipelines"
    spec = load_pipeline(root / "fashion_mnist.yaml")
    assert spec.loss_order == load_pipeline(root / "paper_table2_mnist.yaml").loss_order  # the MNIST column
    assert set(spec.noise) == {"none", "symmetric:0.2", "symmetric:0.4", "symmetric:0.6", "symmetric:0.8",
                               "pairflip:0.2", "pairflip:0.4"}
    assert spec.seeds == (0, 1, 2) and spec.datasets == ("fashion_mnist",)
    cells = expand(spec)
    assert len(cells) == 9 * 7 * 3
    nce_rce = next(c.config for c in cells if c.config.loss.name == "nce+rce")
    o = nce_rce.optim
    assert (nce_rce.model.name, o.epochs, o.batch_size, o.grad_clip) == ("cnn4", 50, 128, 5.0)
    assert (nce_rce.data.augment, o.schedule, o.momentum) == ("none", "cosine", 0.9)
    assert (o.weight_decay, o.nesterov, o.eta_min, nce_rce.loss.beta) == (1e-2, True, 1e-3, 10.0)
    assert {c.config.data.name for c in expand(scaled(spec, "smoke"))} == {"digits"}
