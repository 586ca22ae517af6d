"""Dataset sources read the real on-disk formats (written here, offline) and fail with named fields."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from aplab.data.sources import ImageFiles, ImageTensors, available_datasets, default_data_dir, load_dataset
from aplab.errors import ConfigError
from aplab.noise.maps import CIFAR100_COARSE

# Names of the 20 CIFAR-100 superclasses, indexed like ``CIFAR100_COARSE``'s values.
CIFAR100_COARSE_NAMES: tuple[str, ...] = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)  # fmt: skip

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt to download fails loudly (tests must run offline)."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist
    import torchvision.datasets.utils as tv_utils

    def refuse(*args, **kwargs):
        raise RuntimeError("download attempted in a test")

    for module in (tv_cifar, tv_mnist, tv_utils):
        monkeypatch.setattr(module, "download_and_extract_archive", refuse)
    monkeypatch.setattr(tv_utils, "download_url", refuse)


def _data_dir_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> None:
    assert excinfo.value.field == "data.data_dir"
    message = str(excinfo.value)
    assert message.startswith("data.data_dir=")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# ----------------------------------------------------------------------------- registry & paths


def test_available_datasets():
    assert available_datasets() == sorted(["digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "webvision_mini"])


def test_unknown_name_is_a_config_error_with_suggestion():
    with pytest.raises(ConfigError) as info:
        load_dataset("mnsit", download=False)
    assert info.value.field == "data.name"
    assert "did you mean 'mnist'" in str(info.value) and "cifar100" in str(info.value)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("APLAB_DATA", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("APLAB_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "aplab" / "data"


# ----------------------------------------------------------------------------- digits


def test_digits_split_pixels_and_stats():
    from sklearn.datasets import load_digits

    sk = load_digits()
    ds = load_dataset("digits", data_dir="/nonexistent/ignored", download=False)
    assert (ds.num_classes, ds.channels, ds.image_size) == (10, 1, 8)
    assert ds.class_names == tuple("0123456789")
    tr, te = ds.train, ds.test
    assert isinstance(tr, ImageTensors) and isinstance(te, ImageTensors)
    assert len(tr.labels) + len(te.labels) == 1797
    for part in (tr, te):
        assert part.images.dtype == torch.uint8 and part.images.is_contiguous()
        assert part.images.shape[1:] == (1, 8, 8) and part.images.shape[0] == len(part.labels)
        assert part.labels.dtype == np.int64
    # stratified 80/20: per class, test gets 0.2 * n_c rounded half up
    n_c = np.bincount(sk.target, minlength=10)
    assert np.array_equal(np.bincount(te.labels, minlength=10), np.floor(0.2 * n_c + 0.5))
    assert np.array_equal(np.bincount(tr.labels, minlength=10) + np.bincount(te.labels, minlength=10), n_c)
    # 0..16 -> round(v * 255 / 16), written out by hand
    table = np.array([0, 16, 32, 48, 64, 80, 96, 112, 128, 143, 159, 175, 191, 207, 223, 239, 255])
    expected = np.column_stack([table[sk.images.astype(int)].reshape(1797, 64), sk.target])
    got = np.column_stack(
        [torch.cat([tr.images, te.images]).reshape(1797, 64).numpy(), np.concatenate([tr.labels, te.labels])]
    )
    assert np.array_equal(got[np.lexsort(got.T)], expected[np.lexsort(expected.T)])  # same multiset
    train01 = tr.images.double() / 255
    assert ds.mean == pytest.approx((train01.mean().item(),), abs=1e-12)
    assert ds.std == pytest.approx((train01.std(unbiased=False).item(),), abs=1e-12)


def test_digits_are_kept_parsed_in_the_cache_and_a_broken_cache_is_made_again(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    from aplab.data.sources.digits import DIGITS_CACHE, digits_arrays

    monkeypatch.setenv("APLAB_CACHE", str(tmp_path))
    sk = load_digits()
    first = digits_arrays()  # made from scikit-learn, then written
    assert (tmp_path / DIGITS_CACHE).is_file()
    (tmp_path / DIGITS_CACHE).write_bytes((tmp_path / DIGITS_CACHE).read_bytes()[:100])  # truncated
    second = digits_arrays()
    with np.load(tmp_path / DIGITS_CACHE) as cached:  # rewritten whole
        third = (cached["images"], cached["target"])
    for images, target in (first, second, third):
        assert np.array_equal(images, sk.images) and np.array_equal(target, sk.target)


def test_digits_is_deterministic_whatever_the_global_seed():
    np.random.seed(1)
    a = load_dataset("digits")
    np.random.seed(2)
    torch.manual_seed(2)
    b = load_dataset("digits")
    assert np.array_equal(a.test.labels, b.test.labels)
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.train.images, b.train.images)


# ----------------------------------------------------------------------------- mnist


def _write_idx(path: Path, array: np.ndarray) -> None:
    """The idx-ubyte format: 0, 0, type 0x08 (ubyte), ndim, big-endian int32 dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _mnist_tree(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([2, 7, 1, 8], dtype=np.uint8),
    }
    for name, array in arrays.items():
        _write_idx(root / "MNIST" / "raw" / name, array)
    return arrays


@pytest.mark.parametrize("download", [False, True])  # present files: download=True must not fetch
def test_mnist_round_trip(tmp_path, download):
    arrays = _mnist_tree(tmp_path)
    ds = load_dataset("mnist", tmp_path, download=download)
    assert (ds.num_classes, ds.channels, ds.image_size) == (10, 1, 28)
    assert ds.mean == (0.1307,) and ds.std == (0.3081,)
    for part, prefix in ((ds.train, "train"), (ds.test, "t10k")):
        assert part.images.dtype == torch.uint8 and part.images.is_contiguous()
        assert np.array_equal(part.images.numpy(), arrays[f"{prefix}-images-idx3-ubyte"][:, None])
        assert part.labels.dtype == np.int64
        assert np.array_equal(part.labels, arrays[f"{prefix}-labels-idx1-ubyte"])
    assert ds.train.images[0, 0, 5, 7].item() == arrays["train-images-idx3-ubyte"][0, 5, 7]


def test_mnist_missing_files(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_dataset("mnist", tmp_path, download=False)
    _data_dir_error(info, str(tmp_path / "MNIST" / "raw"), "train-images-idx3-ubyte")


def test_mnist_truncated_file(tmp_path):
    _mnist_tree(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ConfigError) as info:
        load_dataset("mnist", tmp_path, download=False)
    _data_dir_error(info, "could not load MNIST")


def test_mnist_label_count_mismatch(tmp_path):
    _mnist_tree(tmp_path)
    _write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.uint8))
    with pytest.raises(ConfigError) as info:
        load_dataset("mnist", tmp_path, download=False)
    _data_dir_error(info, "3 labels")


# ----------------------------------------------------------------------------- cifar


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """CIFAR's row format: 1024 red values (row-major), then 1024 green, then 1024 blue."""
    return np.stack([np.concatenate([im[0].ravel(), im[1].ravel(), im[2].ravel()]) for im in images])


def _pickle(path: Path, obj: object, numpy1_names: bool = False) -> None:
    """Protocol 2, as the release; ``numpy1_names`` spells globals as numpy<2 (and the release) did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = pickle.dumps(obj, protocol=2)
    if numpy1_names:
        assert b"numpy._core.multiarray\n" in data
        data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(data)


def _cifar10_tree(root: Path, sizes=(2, 1, 3, 2, 2), n_test=3):
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    train_x, train_y = [], []
    for i, n in enumerate(sizes, start=1):
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=n)]
        batch = {"batch_label": f"training batch {i} of 5", "labels": y, "data": _cifar_rows(x),
                 "filenames": [f"{i}_{j}.png" for j in range(n)]}
        _pickle(folder / f"data_batch_{i}", batch, numpy1_names=i % 2 == 1)
        train_x.append(x)
        train_y += y
    test_x = rng.integers(0, 256, size=(n_test, 3, 32, 32), dtype=np.uint8)
    test_y = [9, 0, 9][:n_test]
    # bytes keys, as a py3 pickle of the release loaded with encoding="bytes" would have them
    _pickle(folder / "test_batch", {b"labels": test_y, b"data": _cifar_rows(test_x)})
    meta = {"label_names": CIFAR10_NAMES, "num_cases_per_batch": 10000, "num_vis": 3072}
    _pickle(folder / "batches.meta", meta)
    return np.concatenate(train_x), np.array(train_y), test_x, np.array(test_y)


def test_cifar10_round_trip(tmp_path):
    train_x, train_y, test_x, test_y = _cifar10_tree(tmp_path)
    ds = load_dataset("cifar10", tmp_path, download=True)  # present: no download
    assert (ds.num_classes, ds.channels, ds.image_size) == (10, 3, 32)
    assert ds.class_names == tuple(CIFAR10_NAMES)
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2470, 0.2435, 0.2616)
    for part, x, y in ((ds.train, train_x, train_y), (ds.test, test_x, test_y)):
        assert part.images.dtype == torch.uint8 and part.images.is_contiguous()
        assert part.images.shape == (len(y), 3, 32, 32)
        assert np.array_equal(part.images.numpy(), x)
        assert part.labels.dtype == np.int64 and np.array_equal(part.labels, y)
    # one pixel by the format's definition: blue plane starts at byte 2048 of a row
    row = _cifar_rows(train_x[:1])[0]
    assert ds.train.images[0, 2, 3, 4].item() == row[2048 + 3 * 32 + 4]
    assert np.array_equal(np.bincount(ds.test.labels, minlength=10)[[0, 9]], [1, 2])


def test_a_download_runs_under_the_folder_lock_and_happens_once(tmp_path, monkeypatch):
    """The ranks of a run, or pipeline workers, that find the data missing at once: one downloads, under the
    data folder's lock (another process cannot take it meanwhile), and the others then find the files."""
    import fcntl

    import aplab.data.sources.cifar as cifar
    from aplab.data.sources import DOWNLOAD_LOCK

    downloads = []

    def download(layout, root):
        with open(root / DOWNLOAD_LOCK, "a") as other:  # another process's attempt to take the lock
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        downloads.append(layout.name)
        _cifar10_tree(root)

    monkeypatch.setattr(cifar, "_download_cifar", download)
    first = load_dataset("cifar10", tmp_path, download=True)
    again = load_dataset("cifar10", tmp_path, download=True)
    assert downloads == ["cifar10"] and len(first.train.labels) == len(again.train.labels) == 10


def test_cifar10_default_data_dir_from_env(tmp_path, monkeypatch):
    _cifar10_tree(tmp_path)
    monkeypatch.setenv("APLAB_DATA", str(tmp_path))
    assert len(load_dataset("cifar10", download=False).train.labels) == 10


def test_cifar10_missing_folder(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10", tmp_path, download=False)
    _data_dir_error(info, str(tmp_path / "cifar-10-batches-py"), "data_batch_1", "batches.meta")


def test_cifar10_failed_download_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10", tmp_path, download=True)
    _data_dir_error(info, "download failed", "download attempted in a test")


def test_cifar10_missing_batch(tmp_path):
    _cifar10_tree(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10", tmp_path, download=True)
    _data_dir_error(info, "missing " + str(tmp_path / "cifar-10-batches-py" / "data_batch_3"))


def test_cifar10_corrupt_pickle(tmp_path):
    _cifar10_tree(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"not a pickle at all")
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10", tmp_path, download=False)
    _data_dir_error(info, "data_batch_2 is corrupt")


class _Evil:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_cifar_pickle_cannot_run_code(tmp_path):
    _cifar10_tree(tmp_path)
    sentinel = tmp_path / "pwned"
    _pickle(tmp_path / "cifar-10-batches-py" / "batches.meta", {"label_names": _Evil(str(sentinel))})
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10", tmp_path, download=False)
    _data_dir_error(info, "batches.meta is corrupt", "not allowed")
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("batch", "fragment"),
    [
        ({"labels": [0, 1], "data": np.zeros((2, 3000), dtype=np.uint8)}, "not uint8 [N, 3072]"),
        ({"labels": [0, 1], "data": np.zeros((2, 3072), dtype=np.float32)}, "not uint8 [N, 3072]"),
        ({"labels": [0], "data": np.zeros((2, 3072), dtype=np.uint8)}, "2 images but 1 labels"),
        ({"labels": [0, 10], "data": np.zeros((2, 3072), dtype=np.uint8)}, "outside [0, 10)"),
        ({"data": np.zeros((2, 3072), dtype=np.uint8)}, "no 'labels' entry"),
    ],
)
def test_cifar10_malformed_batch(tmp_path, batch, fragment):
    _cifar10_tree(tmp_path)
    _pickle(tmp_path / "cifar-10-batches-py" / "data_batch_4", batch)
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10", tmp_path, download=False)
    _data_dir_error(info, "data_batch_4", fragment)


def _cifar100_tree(root: Path, fine_to_coarse: np.ndarray, n_test: int = 20):
    rng = np.random.default_rng(2)
    folder = root / "cifar-100-python"
    train_fine = rng.permutation(100)  # every fine class once
    test_fine = rng.integers(0, 100, size=n_test)
    out = {}
    for split, fine in (("train", train_fine), ("test", test_fine)):
        x = rng.integers(0, 256, size=(len(fine), 3, 32, 32), dtype=np.uint8)
        batch = {"filenames": [f"{i}.png" for i in range(len(fine))], "batch_label": split,
                 "fine_labels": [int(v) for v in fine], "data": _cifar_rows(x),
                 "coarse_labels": [int(fine_to_coarse[v]) for v in fine]}
        _pickle(folder / split, batch)
        out[split] = (x, fine)
    _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                              "coarse_label_names": list(CIFAR100_COARSE_NAMES)})
    return out


def test_cifar100_round_trip(tmp_path):
    out = _cifar100_tree(tmp_path, CIFAR100_COARSE)
    ds = load_dataset("cifar100", tmp_path, download=False)
    assert (ds.num_classes, ds.channels, ds.image_size) == (100, 3, 32)
    assert ds.mean == (0.5071, 0.4865, 0.4409) and ds.std == (0.2673, 0.2564, 0.2762)
    assert ds.class_names == tuple(f"fine{i}" for i in range(100))
    for part, (x, fine) in ((ds.train, out["train"]), (ds.test, out["test"])):
        assert np.array_equal(part.images.numpy(), x)
        assert part.labels.dtype == np.int64 and np.array_equal(part.labels, fine)
    assert np.array_equal(np.bincount(ds.train.labels, minlength=100), np.ones(100))


def test_cifar100_standard_coarse_map():
    assert CIFAR100_COARSE.shape == (100,) and CIFAR100_COARSE.dtype == np.int64
    assert np.array_equal(np.bincount(CIFAR100_COARSE, minlength=20), np.full(20, 5))
    assert len(CIFAR100_COARSE_NAMES) == 20
    # known members, by the fine classes' alphabetical indices in the CIFAR-100 release
    known = {0: "fruit_and_vegetables", 1: "fish", 8: "vehicles_1", 47: "trees", 54: "flowers",
             89: "vehicles_2", 95: "aquatic_mammals", 99: "non-insect_invertebrates", 98: "people"}
    for fine, coarse_name in known.items():
        assert CIFAR100_COARSE_NAMES[CIFAR100_COARSE[fine]] == coarse_name, fine
    with pytest.raises(ValueError):
        CIFAR100_COARSE[0] = 1  # read-only constant


def test_cifar100_missing_meta(tmp_path):
    _cifar100_tree(tmp_path, CIFAR100_COARSE)
    (tmp_path / "cifar-100-python" / "meta").unlink()
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar100", tmp_path, download=False)
    _data_dir_error(info, "missing " + str(tmp_path / "cifar-100-python" / "meta"))


# ----------------------------------------------------------------------------- webvision mini


def _jpeg(path: Path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path, format="JPEG")


def _webvision_tree(root: Path):
    wnids = [f"n{i:08d}" for i in range(1000)]
    (root / "info").mkdir(parents=True)
    (root / "info" / "synsets.txt").write_text("".join(f"{w} class {i}, desc\n" for i, w in enumerate(wnids)))
    listed = [("google/q0001/a.jpg", 0), ("google/q0001/b.jpg", 0), ("google/q0002/c.jpg", 1),
              ("google/q0050/d.jpg", 49), ("google/q0051/e.jpg", 50), ("google/q1000/f.jpg", 999)]
    (root / "info" / "train_filelist_google.txt").write_text("".join(f"{p} {c}\n" for p, c in listed) + "\n")
    for rel, c in listed[:4]:  # classes >= 50 need not exist on disk
        _jpeg(root / rel, c)
    for c in range(51):  # class 50's folder exists but is not part of mini
        _jpeg(root / "imagenet_val" / wnids[c] / f"ILSVRC2012_val_{c:08d}.JPEG", c)
    _jpeg(root / "imagenet_val" / wnids[3] / "ILSVRC2012_val_99999999.JPEG", 3)  # a second image of class 3
    (root / "imagenet_val" / wnids[3] / "README.txt").write_text("not an image")
    return wnids


@pytest.mark.parametrize("nested", [False, True])
def test_webvision_mini_layout(tmp_path, nested):
    root = tmp_path / "webvision" if nested else tmp_path / "wv"
    wnids = _webvision_tree(root)
    ds = load_dataset("webvision_mini", tmp_path if nested else root, download=True)
    assert (ds.num_classes, ds.channels, ds.image_size) == (50, 3, 224)
    assert ds.mean == (0.485, 0.456, 0.406) and ds.std == (0.229, 0.224, 0.225)
    assert ds.class_names == tuple(wnids[:50])
    assert isinstance(ds.train, ImageFiles) and isinstance(ds.test, ImageFiles)
    listed = ("google/q0001/a.jpg", "google/q0001/b.jpg", "google/q0002/c.jpg", "google/q0050/d.jpg")
    assert ds.train.paths == [str(root / p) for p in listed]
    assert ds.train.labels.dtype == np.int64 and ds.train.labels.tolist() == [0, 0, 1, 49]
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in ds.train.paths + ds.test.paths)
    assert ds.test.labels.dtype == np.int64
    assert np.array_equal(np.bincount(ds.test.labels), [1, 1, 1, 2] + [1] * 46)
    assert ds.test.paths[3] == str(root / "imagenet_val" / wnids[3] / "ILSVRC2012_val_00000003.JPEG")
    assert all(Path(p).parent.name == wnids[c] for p, c in zip(ds.test.paths, ds.test.labels))


def test_webvision_missing_root(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_dataset("webvision_mini", tmp_path / "nowhere", download=True)
    _data_dir_error(info, "train_filelist_google.txt", "synsets.txt", "imagenet_val/<wnid>/*.JPEG",
                    "cannot be downloaded")


def test_webvision_missing_train_image(tmp_path):
    _webvision_tree(tmp_path)
    (tmp_path / "google" / "q0002" / "c.jpg").unlink()
    with pytest.raises(ConfigError) as info:
        load_dataset("webvision_mini", tmp_path)
    _data_dir_error(info, "missing " + str(tmp_path / "google" / "q0002" / "c.jpg"))


def test_webvision_missing_val_class(tmp_path):
    wnids = _webvision_tree(tmp_path)
    for f in (tmp_path / "imagenet_val" / wnids[17]).iterdir():
        f.unlink()
    with pytest.raises(ConfigError) as info:
        load_dataset("webvision_mini", tmp_path)
    _data_dir_error(info, "no validation images in " + str(tmp_path / "imagenet_val" / wnids[17]))


def test_webvision_malformed_filelist_line(tmp_path):
    _webvision_tree(tmp_path)
    with (tmp_path / "info" / "train_filelist_google.txt").open("a") as f:
        f.write("google/q0003/g.jpg three\n")
    with pytest.raises(ConfigError) as info:
        load_dataset("webvision_mini", tmp_path)
    _data_dir_error(info, "line 8", "three")


def test_webvision_too_few_synsets(tmp_path):
    _webvision_tree(tmp_path)
    (tmp_path / "info" / "synsets.txt").write_text("n00000001\nn00000002\n")
    with pytest.raises(ConfigError) as info:
        load_dataset("webvision_mini", tmp_path)
    _data_dir_error(info, "lists 2 wnids")


def test_webvision_unreadable_synsets(tmp_path):
    _webvision_tree(tmp_path)
    (tmp_path / "info" / "synsets.txt").write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(ConfigError) as info:
        load_dataset("webvision_mini", tmp_path)
    _data_dir_error(info, "cannot read " + str(tmp_path / "info" / "synsets.txt"))
