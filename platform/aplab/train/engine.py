"""The training engine: epochs of SGD with clipping, evaluation, and one host sync per epoch.

Distributed, each rank trains on its slice of every global batch through DistributedDataParallel,
with its loss scaled so that the averaged gradient is the global batch's mean; each rank evaluates
its shard; the epoch's sums are added over the ranks just before the one host sync.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import SINGLE, Rank
from ..errors import RunFailed
from ..keys import M
from .batches import Batch, DeviceBatches
from .group import all_sum, buffers_from_main
from .runtime import Runtime

TRAIN_SUMS = ("loss", "acc_noisy", "acc_clean", "flipped_noisy", "flipped_clean", "count", "flipped")


class NonFiniteLoss(RunFailed):
    """The training loss became NaN or infinite; the run stops as FAILED."""

    def __init__(self, loss: float, epoch: int, run_dir: object = None):
        self.loss, self.epoch = loss, epoch
        where = f" (run folder {run_dir}: marked FAILED; the same command trains it again from scratch)" if run_dir else ""
        super().__init__(f"the training loss is {loss} at epoch {epoch}: lower optim.lr, set optim.grad_clip "
                         f"(e.g. 5), or try another loss{where}")


class Engine:
    """Owns the model, loss, optimizer and schedule; knows nothing of data sources or tracking.

    ``model`` is the plain module (what checkpoints hold); ``trainer`` the module that trains, e.g. its
    DistributedDataParallel wrapper; ``compiled`` its torch.compile'd form for evaluation.
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, runtime: Runtime, grad_clip: float,
                 num_classes: int, compiled: nn.Module | None = None, trainer: nn.Module | None = None,
                 rank: Rank = SINGLE):
        self.model = model
        self.forward = compiled if compiled is not None else model  # a Module with len() (Sequential) may be falsy
        self.trainer = trainer if trainer is not None else self.forward
        self.rank = rank
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.runtime = runtime
        self.grad_clip = grad_clip
        self.num_classes = num_classes

    def train_epoch(self, batches: DeviceBatches) -> torch.Tensor:
        """One pass over the training batches; returns the device tensor of TRAIN_SUMS (no sync)."""
        self.model.train()
        device = self.runtime.device
        sums = torch.zeros(len(TRAIN_SUMS), device=device, dtype=torch.float64)
        for batch in batches:
            with self.runtime.autocast():
                logits = self.trainer(batch.images)
            loss = self.loss_fn(logits, batch.labels)
            objective = loss * self._share(batch) if self.rank.distributed else loss
            penalty = self.loss_fn.penalty(self.model)  # e.g. ANL's delta * ||theta||_1; part of what is minimised
            if penalty is not None:
                loss, objective = loss + penalty, objective + penalty  # once per step: DDP averages the ranks'
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if self.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            sums += step_sums(loss, logits, batch)
        self.scheduler.step()
        return sums

    def _share(self, batch) -> float:
        """The factor turning this rank's mean loss into its share of the global batch's mean, given that
        DistributedDataParallel averages the ranks' gradients: local size x world size / global size."""
        return batch.labels.shape[0] * self.rank.world_size / batch.global_size

    @torch.no_grad()
    def evaluate(self, batches: DeviceBatches, confusion: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cross-entropy sum, correct count and size (device tensor), and optionally the confusion matrix."""
        self.model.eval()
        device = self.runtime.device
        sums = torch.zeros(3, device=device, dtype=torch.float64)
        matrix = torch.zeros(self.num_classes * self.num_classes, device=device, dtype=torch.int64) if confusion else None
        for batch in batches:
            with self.runtime.autocast():
                logits = self.forward(batch.images)
            sums += evaluation_sums(logits, batch.labels, matrix)
        return sums, (matrix.view(self.num_classes, self.num_classes) if matrix is not None else None)

    def confusion(self, test: DeviceBatches) -> torch.Tensor:
        """The test confusion matrix of the model as it stands (summed over the ranks): what a run resumed
        after its last epoch's checkpoint, killed before it finished, finishes with."""
        matrix = self.evaluate(test, confusion=True)[1]
        assert matrix is not None
        all_sum(matrix, self.rank)
        return matrix

    def epoch(self, train: DeviceBatches, val: DeviceBatches | None, test: DeviceBatches,
              epoch: int, epochs: int, confusion: bool = False) -> tuple[dict[str, float], torch.Tensor | None]:
        """Train one epoch and evaluate; the metrics dict costs exactly one host synchronisation."""
        start = time.perf_counter()
        self.loss_fn.on_epoch_start(epoch - 1, epochs)
        lr = self.optimizer.param_groups[0]["lr"]
        train_sums = self.train_epoch(train)
        buffers_from_main(self.model, self.rank)
        val_sums = self.evaluate(val)[0] if val is not None and len(val) else torch.zeros(3, device=train_sums.device,
                                                                                          dtype=torch.float64)
        test_sums, matrix = self.evaluate(test, confusion=confusion)
        if matrix is not None:
            all_sum(matrix, self.rank)
        values = all_sum(torch.cat([train_sums, val_sums, test_sums]), self.rank).tolist()  # the one host sync
        return epoch_metrics(values, lr, time.perf_counter() - start, epoch), matrix


def step_sums(loss: torch.Tensor, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """One training step's contribution to TRAIN_SUMS (on the device: no sync)."""
    with torch.no_grad():
        pred = logits.argmax(dim=1)
        flipped = batch.flipped
        return torch.stack([
            loss.detach().double() * batch.labels.shape[0],
            (pred == batch.labels).sum().double(),
            (pred == batch.clean).sum().double(),
            ((pred == batch.labels) & flipped).sum().double(),
            ((pred == batch.clean) & flipped).sum().double(),
            (batch.labels >= 0).sum().double(),
            flipped.sum().double(),
        ])


def evaluation_sums(logits: torch.Tensor, labels: torch.Tensor, matrix: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy sum, correct count and size of one evaluation batch; the confusion counts added to ``matrix``."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    pred = logits.argmax(dim=1)
    if matrix is not None:
        num_classes = logits.shape[1]
        matrix += torch.bincount(labels * num_classes + pred, minlength=matrix.numel())
    return torch.stack([
        F.cross_entropy(logits, labels, reduction="sum").double(),
        (pred == labels).sum().double(),
        (labels >= 0).sum().double(),
    ])


def epoch_metrics(values: list[float], lr: float, seconds: float, epoch: int) -> dict[str, float]:
    """An epoch's metrics from its sums (TRAIN_SUMS, then validation's and test's loss, correct, size);
    NonFiniteLoss when the training loss is not finite."""
    t = dict(zip(TRAIN_SUMS, values[: len(TRAIN_SUMS)]))
    v_loss, v_correct, v_n, s_loss, s_correct, s_n = values[len(TRAIN_SUMS):]
    if not math.isfinite(t["loss"]):
        raise NonFiniteLoss(t["loss"] / max(t["count"], 1), epoch)
    metrics = {
        M.TRAIN_LOSS: t["loss"] / t["count"],
        M.TRAIN_ACC_NOISY: t["acc_noisy"] / t["count"],
        M.TRAIN_ACC_CLEAN: t["acc_clean"] / t["count"],
        M.TRAIN_MEMORISED: t["flipped_noisy"] / t["flipped"] if t["flipped"] else 0.0,
        M.TRAIN_CORRECTED: t["flipped_clean"] / t["flipped"] if t["flipped"] else 0.0,
        M.TEST_LOSS: s_loss / s_n,
        M.TEST_ACC: s_correct / s_n,
        M.LR: lr,
        M.EPOCH_SECONDS: seconds,
        M.IMAGES_PER_SECOND: t["count"] / seconds,
    }
    if v_n:
        metrics.update({M.VAL_LOSS: v_loss / v_n, M.VAL_ACC: v_correct / v_n})
    return metrics
