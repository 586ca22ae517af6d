"""The ranks of a distributed run: they agree on setup errors, rank 0 trains and tracks, the others follow
the epochs rank 0 decided on from its checkpoint and write nothing."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import AplabError
from .batches import check_batch_split
from .build import build_engine
from .context import RunContext
from .engine import NonFiniteLoss
from .group import first_error, from_main, gather, join_group, leave_group
from .prepare import PreparedData, make_batches, prepare_data
from .result import RunResult
from .resume import restore_training, rng_states
from .runtime import Runtime, select_runtime


def run_rank(ctx: RunContext, lead: Callable[[Runtime, PreparedData], RunResult]) -> RunResult | None:
    """One rank of a distributed run; rank 0 runs ``lead``. The ranks first agree on whether any failed to
    set up (a bad dataset, device or config): rank 0 then raises the first such error and the others stand
    down, so the error reaches the user whichever rank met it, before the elastic agent stops the group."""
    runtime: Runtime | None = None
    data: PreparedData | None = None
    setup_error: AplabError | None = None
    try:
        check_batch_split(ctx.cfg.optim.batch_size, ctx.rank)
        runtime = select_runtime(ctx.cfg.runtime, ctx.rank)
        data = prepare_data(ctx.cfg)
    except AplabError as err:
        setup_error = err
    ctx.backend = join_group(ctx.rank, runtime.device if runtime is not None else torch.device("cpu"))
    try:
        error = first_error(setup_error, ctx.rank)
        if error is not None and ctx.rank.is_main:
            raise error
        if error is not None:
            return None  # rank 0 reports it
        assert runtime is not None and data is not None
        return lead(runtime, data) if ctx.rank.is_main else follow(ctx, runtime, data)
    finally:
        leave_group()


def follow(ctx: RunContext, runtime: Runtime, data: PreparedData) -> None:
    """A rank other than 0: train the epochs rank 0 decided on, from its checkpoint; nothing is written."""
    plan = from_main(None, ctx.rank)
    if plan is None:
        return None  # nothing to train (finished earlier)
    engine = build_engine(ctx.cfg, data, runtime, ctx.rank)
    train, val, test = make_batches(data, ctx.cfg, runtime, ctx.rank)
    start = restore_training(ctx, engine, train, plan["checkpoint"])
    epochs = ctx.cfg.optim.epochs
    if start > epochs:  # every epoch was trained; rank 0 finishes the run with the test confusion matrix
        engine.confusion(test)
        return None
    try:
        for epoch in range(start, epochs + 1):
            engine.epoch(train, val, test, epoch, epochs, confusion=epoch == epochs)
            gather(rng_states(runtime), ctx.rank)  # rank 0 checkpoints every rank's generators
    except NonFiniteLoss:
        return None  # every rank sees the same summed loss: rank 0 marks the run FAILED and reports it
    return None
