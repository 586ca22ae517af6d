"""The building blocks of every loss: shared probabilities, per-sample terms and their metadata."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

Fidelity = Literal["code", "paper"]
FIDELITIES: tuple[str, ...] = ("code", "paper")

#: The authors' code clamps the one-hot label at 1e-4 inside RCE's log: A = ln(1e-4).
RCE_A_CODE = math.log(1e-4)
#: The paper text sets A = -4 (section 3 and 5).
RCE_A_PAPER = -4.0
#: The authors' code clamps probabilities at 1e-7 inside RCE, GCE and NGCE.
PROB_FLOOR = 1e-7
LOG_PROB_FLOOR = math.log(PROB_FLOOR)


@dataclass(frozen=True)
class LossInfo:
    """What a loss is: active or passive (paper section 4), provably robust, and where it comes from."""

    name: str
    kind: Literal["active", "passive", "active+passive", "active+active", "passive+passive", "multi-stage"]
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
