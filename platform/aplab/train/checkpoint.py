"""Atomic checkpoints: written to a temporary file in the same folder, then renamed over the old one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_bytes


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda handle: handle.write(json.dumps(data, indent=2, default=str).encode()))


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None
