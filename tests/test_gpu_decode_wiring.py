"""runtime.decode=gpu wired into a run: the WebVision batches of make_batches come from the device decoder
(on CPU here), and `aplab train` without CUDA refuses it in one line before anything is created."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import torch
from PIL import Image

from aplab.config import from_dict
from aplab.config.resolve import resolve
from aplab.train.prepare import make_batches, prepare_data
from aplab.train.runtime import Runtime
from tests.helpers import aplab_command


def webvision_tree(root) -> None:
    """Classes 0..49, two 40x48 training JPEGs each and one validation JPEG (ImageNet layout)."""
    wnids = [f"n{i:08d}" for i in range(1000)]
    (root / "info").mkdir(parents=True)
    (root / "info" / "synsets.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(wnids)))
    rng = np.random.default_rng(0)
    lines = []
    for c in range(50):
        for k in range(2):
            rel = f"google/q{c:04d}/{k}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / rel, quality=90)
            lines.append(f"{rel} {c}\n")
        val = root / "imagenet_val" / wnids[c]
        val.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(val / "a.JPEG", quality=90)
    (root / "info" / "train_filelist_google.txt").write_text("".join(lines))


def test_webvision_batches_come_from_the_device_decoder_and_repeat_under_a_seed(tmp_path):
    webvision_tree(tmp_path / "webvision")
    cfg = resolve(from_dict({"data": {"name": "webvision_mini", "data_dir": str(tmp_path)},
                             "runtime": {"decode": "gpu", "device": "cpu"}, "optim": {"batch_size": 16}}))
    data = prepare_data(cfg)
    train, val, test = make_batches(data, cfg, Runtime(torch.device("cpu"), "fp32", False))

    def epoch():
        train.seed(3)
        return list(train)

    first, again = epoch(), epoch()
    assert type(train.loader).__name__ == "DeviceDecodedFiles"
    assert all(b.images.shape == (16, 3, 224, 224) and b.images.dtype == torch.float32 for b in first)
    assert all(torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) for a, b in zip(first, again))
    test_batches = list(test)
    assert sum(b.images.shape[0] for b in test_batches) == 50
    assert torch.equal(torch.cat([b.labels for b in test_batches]), torch.arange(50))  # in file order


def test_train_with_gpu_decode_and_no_cuda_is_exit_2_in_one_line(tmp_path):
    webvision_tree(tmp_path / "webvision")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(aplab_command("train", "--dataset", "webvision_mini", "--data-dir", str(tmp_path),
                                        "--epochs", "1", "--set", "runtime.decode=gpu", "--tracking-uri",
                                        f"sqlite:///{tmp_path}/mlflow.db", "--no-progress"),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "aplab: error: runtime.decode='gpu' is not allowed: cpu on this machine (no CUDA device is visible)"]
    assert not (tmp_path / "mlflow.db").exists()
