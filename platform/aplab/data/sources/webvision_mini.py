"""webvision_mini: the first 50 classes of WebVision 1.0's Google subset, local only, and its preset.

Never downloaded. ``<root>`` is ``<data_dir>`` itself when it holds ``info/``, else ``<data_dir>/webvision``::

    <root>/info/train_filelist_google.txt   lines "google/q0001/xxx.jpg 0" (path relative to root)
    <root>/info/synsets.txt                 1000 lines "<wnid> [description]", in class order
    <root>/google/q0001/*.jpg ...           the WebVision 1.0 Google training images
    <root>/imagenet_val/<wnid>/*.JPEG       ILSVRC-2012 validation images sorted by class

Train keeps the lines with label < 50 (the first 50 classes); test is the validation images of the first
50 wnids of ``synsets.txt``, labelled by that order. The images are read per batch (``ImageFiles``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...config.presets import DatasetPreset
from .base import Dataset, ImageFiles, data_dir_error, dir_or_default, int_labels, register_dataset

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
WEBVISION_MINI_CLASSES = 50
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}

PRESET = DatasetPreset(
    model="resnet50", epochs=250, lr=0.4, weight_decay=3e-5, augment="webvision", batch_size=512,
    nesterov=True, schedule="exponential", apl=(50.0, 0.1), apl_beta_with_mae=1.0, sce=(10.0, 1.0),
    successors={"anl-ce": {"alpha": 20.0, "beta": 1.0, "delta": 5e-6},
                "nce+agce": {"alpha": 50.0, "beta": 0.1, "a": 2.5, "q": 3.0}})

_WEBVISION_EXPECTED = (
    "a WebVision 1.0 root (data_dir itself or data_dir/webvision) holding "
    "info/train_filelist_google.txt (lines 'google/q0001/x.jpg 0'), the google/ images, "
    "info/synsets.txt (1000 wnids in class order) and imagenet_val/<wnid>/*.JPEG"
)


def _read_lines(path: Path, data_dir: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise data_dir_error(data_dir, _WEBVISION_EXPECTED, f"cannot read {path} ({exc})") from exc


def _webvision_root(data_dir: Path) -> Path:
    return data_dir if (data_dir / "info").is_dir() else data_dir / "webvision"


def _webvision_train(root: Path, data_dir: Path) -> ImageFiles:
    """Google-subset training files of the first 50 classes, checked to exist (one listdir per folder)."""
    filelist = root / "info" / "train_filelist_google.txt"
    rel_paths: list[str] = []
    labels: list[int] = []
    for lineno, line in enumerate(_read_lines(filelist, data_dir), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise data_dir_error(data_dir, _WEBVISION_EXPECTED, f"{filelist} line {lineno} is {line!r}")
        if int(parts[1]) < WEBVISION_MINI_CLASSES:
            rel_paths.append(parts[0])
            labels.append(int(parts[1]))
    if not rel_paths:
        raise data_dir_error(data_dir, _WEBVISION_EXPECTED, f"{filelist} lists no image of classes 0..49")
    listings: dict[Path, set[str]] = {}
    for rel in rel_paths:
        path = root / rel
        if path.parent not in listings:
            listings[path.parent] = set(os.listdir(path.parent)) if path.parent.is_dir() else set()
        if path.name not in listings[path.parent]:
            raise data_dir_error(data_dir, _WEBVISION_EXPECTED, f"missing {path} (listed in {filelist})")
    paths = [os.path.abspath(root / rel) for rel in rel_paths]
    checked = int_labels(labels, WEBVISION_MINI_CLASSES, f"{filelist} labels", data_dir, _WEBVISION_EXPECTED)
    return ImageFiles(paths, checked)


def _webvision_test(root: Path, data_dir: Path) -> tuple[ImageFiles, tuple[str, ...]]:
    """ILSVRC-2012 validation images of the first 50 synsets, labelled by synsets.txt order."""
    synsets = root / "info" / "synsets.txt"
    wnids = [line.split()[0] for line in _read_lines(synsets, data_dir) if line.strip()]
    if len(wnids) < WEBVISION_MINI_CLASSES:
        problem = f"{synsets} lists {len(wnids)} wnids, fewer than {WEBVISION_MINI_CLASSES}"
        raise data_dir_error(data_dir, _WEBVISION_EXPECTED, problem)
    wnids = wnids[:WEBVISION_MINI_CLASSES]
    paths: list[str] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = root / "imagenet_val" / wnid
        entries = folder.iterdir() if folder.is_dir() else ()
        files = sorted(p for p in entries if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise data_dir_error(data_dir, _WEBVISION_EXPECTED, f"no validation images in {folder}")
        paths.extend(os.path.abspath(p) for p in files)
        labels.extend([label] * len(files))
    return ImageFiles(paths, np.asarray(labels, dtype=np.int64)), tuple(wnids)


@register_dataset("webvision_mini", preset=PRESET)
def load_webvision_mini(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """WebVision-mini: first 50 classes of the Google subset; test on their ILSVRC-2012 val images."""
    data_dir = dir_or_default(data_dir)
    root = _webvision_root(data_dir)
    for need in (root / "info" / "train_filelist_google.txt", root / "info" / "synsets.txt"):
        if not need.is_file():
            raise data_dir_error(data_dir, _WEBVISION_EXPECTED, f"missing {need} (it cannot be downloaded)")
    train = _webvision_train(root, data_dir)
    test, wnids = _webvision_test(root, data_dir)
    return Dataset(
        name="webvision_mini",
        num_classes=WEBVISION_MINI_CLASSES,
        train=train,
        test=test,
        mean=IMAGENET_STATS[0],
        std=IMAGENET_STATS[1],
        channels=3,
        image_size=224,
        class_names=wnids,
    )
