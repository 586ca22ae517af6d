"""The process group of a distributed run: joining it, and the few collectives a run needs.

Every function is a no-op (or returns its input) for a run in one process, so the engine and the run
call them unconditionally. torch.distributed's public API only; gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

import torch
import torch.distributed as dist

from ..distributed import Rank

log = logging.getLogger(__name__)


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def join_group(rank: Rank, device: torch.device) -> str:
    """Join the group torchrun's environment describes (MASTER_ADDR/PORT, RANK, WORLD_SIZE); the backend."""
    backend = backend_for(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank.rank, world_size=rank.world_size,
                                device_id=device if device.type == "cuda" else None)
    return backend


def leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(tensor: torch.Tensor, rank: Rank) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place (every rank gets the total)."""
    if rank.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def buffers_from_main(module: torch.nn.Module, rank: Rank) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) in every rank's module: without SyncBatchNorm each
    rank's statistics follow its own slices, and every rank must evaluate the model rank 0 checkpoints."""
    if rank.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def from_main(value: Any, rank: Rank) -> Any:
    """Rank 0's ``value`` on every rank (pickled; for decisions and checkpoints, not for the hot loop)."""
    if not rank.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, rank: Rank) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not rank.distributed:
        return [value]
    values: list[Any] = [None] * rank.world_size
    dist.all_gather_object(values, value)
    return values


def portable(error: BaseException) -> tuple[type, str, bytes | None, bytes | None]:
    """An exception as (type, message, the exception pickled, its attributes pickled): the pickled exception
    when it survives a round trip; aplab's errors do not (they take other arguments than their message:
    ConfigError's field, value, allowed), so their type, message and attributes (None where they do not
    pickle) are sent too."""
    return type(error), str(error), round_trip(error), round_trip(getattr(error, "__dict__", {}))


def round_trip(value: Any) -> bytes | None:
    """``value`` pickled, when it also unpickles (an exception whose __init__ needs more than its args does not)."""
    try:
        blob = pickle.dumps(value)
        pickle.loads(blob)
    except Exception:
        return None
    return blob


def rebuild(sent: tuple[type, str, bytes | None, bytes | None], message: str | None = None) -> BaseException:
    """The exception sent: unpickled where it could be (and ``message`` does not replace its own), else made
    of its type and message with its attributes (a RuntimeError naming the type where the type cannot be made
    without its own arguments)."""
    kind, text, pickled, attributes = sent
    if pickled is not None and message is None:
        return pickle.loads(pickled)
    try:
        error = kind.__new__(kind)
        BaseException.__init__(error, message or text)
    except TypeError:
        return RuntimeError(f"{kind.__name__}: {message or text}")
    if attributes is not None:
        error.__dict__.update(pickle.loads(attributes))
    return error


def first_error(error: BaseException | None, rank: Rank) -> BaseException | None:
    """Every rank's setup error (or None) made known to every rank: the lowest rank's, its message naming
    the rank when it is not rank 0's; None when no rank failed. Rank 0 raises it, the others stand down,
    so the error reaches the user before the elastic agent stops the group."""
    if not rank.distributed:
        return error
    for index, sent in enumerate(gather(portable(error) if error is not None else None, rank)):
        if sent is not None:
            return error if index == rank.rank else rebuild(sent, f"rank {index}: {sent[1]}")
    return None


