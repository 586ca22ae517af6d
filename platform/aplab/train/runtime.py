"""Where and how a run computes: device, precision (bf16 autocast), memory format, CPU threads, seeding."""

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
from .threads import choose_threads


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32", "bf16" (autocast) or "fp64" (the model and its inputs in float64)
    channels_last: bool
    threads: int = 1  # torch's intra-op threads for this run (set by select_runtime)

    @property
    def dtype(self) -> torch.dtype:
        """What the model's parameters and inputs are held in."""
        return torch.float64 if self.precision == "fp64" else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the model's forward pass; losses switch it off and compute in float32."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


#: torch's intra-op threads before the first run of this process set them: the most ``auto`` gives a run
_THREAD_CEILING: list[int] = []


def use_threads(cfg: RuntimeConfig, rank: Rank = SINGLE) -> int:
    """Set torch's intra-op threads for the run starting in this process (process-global, so only when a run
    starts, never on import): ``runtime.threads`` when set, else the free cores of its allocation (``threads``)
    at most what torch had before (a pipeline worker's or a rank's share); a rank keeps its launcher's share."""
    if not _THREAD_CEILING:
        _THREAD_CEILING.append(torch.get_num_threads())
    if rank.distributed and cfg.threads is None:
        return torch.get_num_threads()
    choice = choose_threads(cfg.threads, _THREAD_CEILING[0])
    torch.set_num_threads(choice.threads)
    return choice.threads


def select_runtime(cfg: RuntimeConfig, rank: Rank = SINGLE, set_threads: bool = True) -> Runtime:
    """Resolve "auto": CUDA when present with bf16 and channels_last, else CPU in fp32. A rank of a
    distributed run on CUDA trains on ``cuda:<local rank>``. Called when a run starts, it sets the run's
    CPU threads (``use_threads``) unless ``set_threads`` is False (a check before any run)."""
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
    threads = use_threads(cfg, rank) if set_threads else torch.get_num_threads()
    return Runtime(device, precision, channels_last, threads)


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
