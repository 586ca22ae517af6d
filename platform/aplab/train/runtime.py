"""Where and how a run computes: device, precision (bf16 autocast), memory format, seeding."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import numpy as np
import torch

from ..config import RuntimeConfig
from ..distributed import SINGLE, Rank, rank_seed
from ..data.gpu_decode import check_decode
from ..errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32", "bf16" (autocast) or "fp64" (the model and its inputs in float64)
    channels_last: bool

    @property
    def dtype(self) -> torch.dtype:
        """What the model's parameters and inputs are held in."""
        return torch.float64 if self.precision == "fp64" else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the model's forward pass; losses switch it off and compute in float32."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def select_runtime(cfg: RuntimeConfig, rank: Rank = SINGLE) -> Runtime:
    """Resolve "auto": CUDA when present with bf16 and channels_last, else CPU in fp32. A rank of a
    distributed run on CUDA trains on ``cuda:<local rank>``."""
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("runtime.device", cfg.device, "cpu or auto: this machine has no CUDA device")
    if rank.distributed and device.type == "cuda":
        device = torch.device("cuda", rank.local_rank)
    check_decode(cfg.decode, device)
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    return Runtime(device, precision, channels_last)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy's legacy global state and torch (CPU and CUDA) for weight init and losses."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_rank(seed: int, rank: Rank) -> None:
    """Once the model is built (alike on every rank from ``seed``): torch's global generator, which losses
    draw from per sample (NLNL's complementary labels), reseeded on ranks other than 0 from (seed, rank), so
    each rank draws its own numbers for its slice. Rank 0 goes on as a run in one process."""
    if not rank.is_main:
        torch.manual_seed(rank_seed(seed, rank.rank))
