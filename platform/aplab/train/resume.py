"""Checkpoints of a run: what each epoch saves (model, optimiser, schedule, every rank's generators, the
history) and how a run, or one rank of it, picks up from the last one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .checkpoint import save_checkpoint
from .context import RunContext
from .engine import Engine
from .identity import where_tags
from .recorder import RunRecorder
from .runtime import Runtime, seed_rank

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def save_epoch(run_dir: Path, engine: Engine, train, history: list[dict[str, float]], epoch: int,
               rank_rngs: list[dict[str, Any]]) -> None:
    """The plain module's state (no DDP wrapper) and every rank's generators, by rank 0 alone."""
    state = {
        "epoch": epoch, "model": engine.model.state_dict(), "optimizer": engine.optimizer.state_dict(),
        "scheduler": engine.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
        "data_rng": train.generator.get_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "rank_rngs": rank_rngs, "history": history,
    }
    save_checkpoint(run_dir / CHECKPOINT, state)  # atomic: the previous one stays until this one is whole


def restore_training(ctx: RunContext, engine: Engine, train, checkpoint: dict[str, Any] | None) -> int:
    """Seed a fresh start, or load the checkpoint's model, optimizer, schedule and generators (on every
    rank); the first epoch to train. Each rank takes back its own generators when the world size is the
    checkpoint's, else rank 0's (the data order is every rank's alike), reseeded from it on other ranks."""
    if checkpoint is None:
        train.seed(ctx.cfg.runtime.seed)
        return 1
    engine.model.load_state_dict(checkpoint["model"])
    engine.optimizer.load_state_dict(checkpoint["optimizer"])
    engine.scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["torch_rng"])
    train.generator.set_state(checkpoint["data_rng"])
    if checkpoint.get("cuda_rng") is not None and torch.cuda.is_available() and not ctx.rank.distributed:
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    ranks = checkpoint.get("rank_rngs", [])
    if len(ranks) == ctx.rank.world_size:
        restore_rng_states(ranks[ctx.rank.rank], engine.runtime)
    elif not ctx.rank.is_main:  # rank 0's generator, as every rank's: each other rank then draws its own
        seed_rank(int(torch.randint(2**62, (1,))), ctx.rank)
    return checkpoint["epoch"] + 1


def resume(ctx: RunContext, engine: Engine, train, checkpoint: dict[str, Any], recorder: RunRecorder) -> int:
    """Rank 0's resume: the training state, the history up to the checkpoint, and the tracked run reopened
    with where it now trains; the first epoch to train."""
    start = restore_training(ctx, engine, train, checkpoint)
    recorder.state.history = checkpoint["history"]  # epochs after the checkpoint are run again
    recorder.forget_lost_run()
    recorder.reconcile()
    where = where_tags(engine.runtime, ctx.rank, ctx.backend)
    recorder.state.tags.update(where)  # a run the store lost is made again with them
    if recorder.run_id is not None:
        recorder.attempt("resume", lambda: recorder.tracker.resume_run(recorder.run_id))
        recorder.attempt("tags", lambda: recorder.tracker.set_tags(recorder.run_id, where))
    log.info("resuming %s at epoch %d", recorder.state.run_name, start)
    return start


def rng_states(runtime: Runtime) -> dict[str, Any]:
    """This rank's torch generators (CPU, and its CUDA device's) for the checkpoint."""
    cuda = torch.cuda.get_rng_state(runtime.device) if runtime.device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def restore_rng_states(states: dict[str, Any], runtime: Runtime) -> None:
    torch.set_rng_state(states["cpu"])
    if states["cuda"] is not None and runtime.device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], runtime.device)
