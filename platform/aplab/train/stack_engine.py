"""A stack's epoch: the members' own engines (model, loss, optimizer, schedule) trained through one fused model.

Every step draws each member's batch from its own batches (its own order and augmentation), runs the
members' forward passes as one (``models.stacked``), adds their losses and steps each member's own
optimizer after clipping its own gradients: each member trains exactly as its solo run. A step where the
members' batches differ in size (their noisy labels give splits of different sizes: the last batch is
ragged) runs each member's own model instead, so BatchNorm sees exactly the member's batch; evaluation,
which is per sample, pads the members' batches to one size. One host sync per epoch for the whole stack.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..models.stacked import StackedForward, stack_inputs
from .batches import Batch, DeviceBatches
from .engine import TRAIN_SUMS, Engine, NonFiniteLoss, epoch_metrics, evaluation_sums, step_sums
from .runtime import Runtime

EVAL_SUMS = 3  # cross-entropy sum, correct, size


@dataclass
class MemberEpoch:
    """What one member trains this epoch: its engine, batches, epoch number and whether it ends the run."""

    engine: Engine
    train: DeviceBatches
    val: DeviceBatches | None
    test: DeviceBatches
    epoch: int
    epochs: int

    @property
    def last(self) -> bool:
        return self.epoch == self.epochs


@dataclass
class MemberOutcome:
    """A member's epoch: its metrics and (last epoch) confusion matrix, or the NonFiniteLoss that fails it."""

    metrics: dict[str, float] | None
    matrix: torch.Tensor | None
    failure: NonFiniteLoss | None = None


def stack_epoch(members: Sequence[MemberEpoch], runtime: Runtime) -> list[MemberOutcome]:
    """Train one epoch of every member and evaluate each; one host synchronisation for the stack."""
    start = time.perf_counter()
    engines = [m.engine for m in members]
    lrs = []
    for m in members:
        m.engine.loss_fn.on_epoch_start(m.epoch - 1, m.epochs)
        lrs.append(m.engine.optimizer.param_groups[0]["lr"])
    train = train_stack(engines, [m.train for m in members], runtime)
    val = evaluate_stack(engines, [m.val for m in members], runtime, [False] * len(members))
    test_confusion = [m.last for m in members]
    test = evaluate_stack(engines, [m.test for m in members], runtime, test_confusion)
    rows = torch.stack([torch.cat([t, v[0], s[0]]) for t, v, s in zip(train, val, test)])
    values = rows.tolist()  # the one host sync
    seconds = time.perf_counter() - start
    outcomes = []
    for m, row, lr, (_, matrix) in zip(members, values, lrs, test):
        try:
            metrics = epoch_metrics(row, lr, seconds, m.epoch)
        except NonFiniteLoss as err:
            outcomes.append(MemberOutcome(None, None, err))
            continue
        outcomes.append(MemberOutcome(metrics, matrix))
    return outcomes


def train_stack(engines: Sequence[Engine], trains: Sequence[DeviceBatches], runtime: Runtime) -> list[torch.Tensor]:
    """One pass over every member's training batches; each member's TRAIN_SUMS (device tensors)."""
    fused = StackedForward([e.model for e in engines])
    for e in engines:
        e.model.train()
    sums = [torch.zeros(len(TRAIN_SUMS), device=runtime.device, dtype=torch.float64) for _ in engines]
    iterators = [iter(t) for t in trains]
    while True:
        batches: list[Batch | None] = [next(it, None) for it in iterators]
        active = [k for k, b in enumerate(batches) if b is not None]
        if not active:
            break
        logits = forward_train(fused, engines, batches, active, runtime)
        losses: dict[int, torch.Tensor] = {}
        for k in active:
            engine, batch = engines[k], batches[k]
            loss = engine.loss_fn(logits[k], batch.labels)
            penalty = engine.loss_fn.penalty(engine.model)
            losses[k] = loss + penalty if penalty is not None else loss
        for k in active:
            engines[k].optimizer.zero_grad(set_to_none=True)
        torch.stack([losses[k] for k in active]).sum().backward()  # each member's gradient is its own loss's
        for k in active:
            engine = engines[k]
            if engine.grad_clip > 0:
                nn.utils.clip_grad_norm_(engine.model.parameters(), engine.grad_clip)
            engine.optimizer.step()
            sums[k] += step_sums(losses[k], logits[k], batches[k])
    for e in engines:
        e.scheduler.step()
    return sums


def forward_train(fused: StackedForward, engines: Sequence[Engine], batches: Sequence[Batch | None],
                  active: list[int], runtime: Runtime) -> dict[int, torch.Tensor]:
    """Each active member's logits: from the fused model when every member has a batch of one size, else
    from each member's own model (BatchNorm must see exactly the member's batch)."""
    sizes = {b.images.shape[0] for b in batches if b is not None}
    with runtime.autocast():
        if len(active) == len(engines) and len(sizes) == 1:
            out = fused(stack_inputs([b.images for b in batches]))
            return dict(enumerate(out.unbind(0)))
        return {k: engines[k].model(batches[k].images) for k in active}


@torch.no_grad()
def evaluate_stack(engines: Sequence[Engine], sets: Sequence[DeviceBatches | None], runtime: Runtime,
                   confusion: Sequence[bool]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Every member's evaluation sums (and confusion matrix where asked) on its own set, through the fused
    model; a set shared by all members (the test set) is read once."""
    fused = StackedForward([e.model for e in engines])
    for e in engines:
        e.model.eval()
    device, k = runtime.device, len(engines)
    sums = [torch.zeros(EVAL_SUMS, device=device, dtype=torch.float64) for _ in engines]
    matrices = [torch.zeros(e.num_classes ** 2, device=device, dtype=torch.int64) if c else None
                for e, c in zip(engines, confusion)]
    if all(s is None or not len(s) for s in sets):
        return list(zip(sums, matrices))
    shared = all(s is sets[0] for s in sets)
    iterators = [iter(sets[0])] if shared else [iter(s) if s is not None else iter(()) for s in sets]
    while True:
        batches = [next(it, None) for it in iterators]
        if all(b is None for b in batches):
            break
        if shared:
            batches = batches * k
            x = batches[0].images.repeat(1, k, 1, 1)
        else:
            x = stack_inputs(padded([b.images if b is not None else None for b in batches]))
        with runtime.autocast():
            out = fused(x)
        for index, batch in enumerate(batches):
            if batch is not None:
                n = batch.labels.shape[0]
                sums[index] += evaluation_sums(out[index, :n], batch.labels, matrices[index])
    return [(s, m.view(e.num_classes, e.num_classes) if m is not None else None)
            for s, m, e in zip(sums, matrices, engines)]


def padded(images: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    """The members' evaluation batches at one size (zeros after a member's last image, or in place of a
    missing batch): in evaluation every output row depends on its own input only."""
    reference = next(x for x in images if x is not None)
    size = max(x.shape[0] for x in images if x is not None)
    out = []
    for x in images:
        if x is not None and x.shape[0] == size:
            out.append(x)
            continue
        pad = torch.zeros((size, *reference.shape[1:]), dtype=reference.dtype, device=reference.device)
        if x is not None:
            pad[: x.shape[0]] = x
        out.append(pad)
    return out
