"""The building blocks of every loss: shared probabilities, per-sample terms and their metadata."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol, get_args, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputShapeError

Fidelity = Literal["code", "paper"]
FIDELITIES: tuple[str, ...] = ("code", "paper")

#: The authors' code clamps the one-hot label at 1e-4 inside RCE's log: A = ln(1e-4).
RCE_A_CODE = math.log(1e-4)
#: The paper text sets A = -4 (section 3 and 5).
RCE_A_PAPER = -4.0
#: The authors' code clamps probabilities at 1e-7 inside RCE, GCE and NGCE.
PROB_FLOOR = 1e-7
LOG_PROB_FLOOR = math.log(PROB_FLOOR)


#: The kinds of loss (paper section 4, and the combinations and successors since).
LossKind = Literal["active", "passive", "active+passive", "active+active", "passive+passive", "multi-stage"]
LOSS_KINDS: tuple[str, ...] = get_args(LossKind)


@dataclass(frozen=True)
class LossInfo:
    """What a loss is: active or passive (paper section 4), provably robust, and where it comes from."""

    name: str
    kind: LossKind
    robust: bool
    summary: str
    reference: str
    ablation: bool = False


class Probabilities:
    """log-softmax and softmax of one batch of logits, computed once and shared by all terms."""

    def __init__(self, logits: torch.Tensor, targets: torch.Tensor):
        self.logits = logits
        self.targets = targets
        self.index = targets.unsqueeze(1)

    @cached_property
    def log_p(self) -> torch.Tensor:
        return F.log_softmax(self.logits, dim=1)

    @cached_property
    def p(self) -> torch.Tensor:
        return self.log_p.exp()

    @cached_property
    def log_p_y(self) -> torch.Tensor:
        return self.log_p.gather(1, self.index).squeeze(1)

    @cached_property
    def p_y(self) -> torch.Tensor:
        return self.log_p_y.exp()

    @cached_property
    def one_minus_p_y(self) -> torch.Tensor:
        """1 - p_y, computed as -expm1(log p_y) so it keeps precision when p_y is close to 1."""
        return -torch.expm1(self.log_p_y)

    @cached_property
    def p_floored(self) -> torch.Tensor:
        """p clamped to [1e-7, 1], as the authors' RCE/GCE/NGCE code does."""
        return self.p.clamp(min=PROB_FLOOR, max=1.0)

    def off_target_sum(self, probs: torch.Tensor) -> torch.Tensor:
        """Sum over k != y of ``probs[:, k]`` (a masked sum, exact even when p_y is close to 1)."""
        return probs.scatter(1, self.index, 0.0).sum(dim=1)

    def floored_pow(self, q: float) -> torch.Tensor:
        """clamp(p, 1e-7, 1) ** q for all classes, via exp(q log p): finite gradients everywhere."""
        return torch.exp(q * self.log_p.clamp(min=LOG_PROB_FLOOR))


class Term(Protocol):
    """A per-sample loss term: (probabilities) -> [N] losses."""

    def __call__(self, probs: Probabilities) -> torch.Tensor: ...


@runtime_checkable
class LossHooks(Protocol):
    """What the engine calls on every built loss, unconditionally (no-ops unless a loss needs them)."""

    def on_epoch_start(self, epoch: int, epochs: int) -> None: ...

    def observe_labels(self, labels) -> None: ...

    def penalty(self, model: nn.Module) -> torch.Tensor | None: ...


class Loss(nn.Module):
    """Base of every built loss: the engine hooks as no-ops, and the metadata ``build`` records."""

    def __init__(self, info: LossInfo, num_classes: int, reduction: str, params: dict[str, object]):
        super().__init__()
        self.info = info
        self.num_classes = num_classes
        self.reduction = reduction
        self.params = params

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called by the engine before each epoch (0-based); multi-stage losses switch stage here."""

    def observe_labels(self, labels) -> None:
        """Called once with the (noisy) training labels before training."""

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A term the engine adds to the training loss (ANL's delta * ||theta||_1), or None."""
        return None

    def extra_repr(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.info.name}, num_classes={self.num_classes}, reduction={self.reduction}, {shown}"


def reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply a reduction ("mean", "sum" or "none") to per-sample losses."""
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def check_inputs(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> None:
    """Shapes and label range; the range check reads values only for CPU tensors (no device sync)."""
    if logits.dim() != 2 or logits.shape[1] != num_classes:
        raise InputShapeError("logits", tuple(logits.shape), f"a [N, {num_classes}] tensor")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise InputShapeError("targets", tuple(targets.shape), f"a [N] tensor with N = {logits.shape[0]}")
    if targets.dtype not in (torch.int64, torch.int32):
        raise InputShapeError("targets", targets.dtype, "an integer (int64) tensor of class indices")
    if targets.device.type == "cpu" and targets.numel():
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise InputShapeError("targets", bad, f"class indices in [0, {num_classes})")


def float_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits in float32 unless already float32/float64 (losses are never computed in half precision)."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
