"""Bi-tempered logistic loss (Amid et al., NeurIPS 2019), as google/bi-tempered-loss computes it.

The tempered softmax p = exp_t2(z - lambda(z)) takes its normalisation lambda from the official
fixed-point iteration (5 steps on the max-shifted logits, stable in float32); the gradient is the
official custom one, (p - y) p^(t2-t1) - escort * sum_k (p_k - y_k) p_k^(t2-t1), escort = p^t2 / sum p^t2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import Probabilities

#: The official code's fixed-point iterations for t2 > 1.
NUM_ITERS = 5
#: The official code adds 1e-10 to the labels inside log_t.
LABEL_OFFSET = 1e-10


def log_t(u: torch.Tensor | float, t: float):
    """The tempered logarithm (u^(1-t) - 1)/(1-t); log at t = 1."""
    if t == 1.0:
        return torch.log(u) if isinstance(u, torch.Tensor) else math.log(u)
    return (u ** (1.0 - t) - 1.0) / (1.0 - t)


def exp_t(u: torch.Tensor, t: float) -> torch.Tensor:
    """The tempered exponential relu(1 + (1-t)u)^(1/(1-t)); exp at t = 1."""
    if t == 1.0:
        return u.exp()
    return torch.relu(1.0 + (1.0 - t) * u).pow(1.0 / (1.0 - t))


def tempered_softmax(z: torch.Tensor, t: float) -> torch.Tensor:
    """exp_t(z - lambda, t) with sum 1; lambda by the official fixed point for t > 1, logsumexp at t = 1."""
    if t == 1.0:
        return torch.softmax(z, dim=1)
    mu = z.amax(dim=1, keepdim=True)
    start = z - mu
    shifted = start
    for _ in range(NUM_ITERS):
        partition = exp_t(shifted, t).sum(dim=1, keepdim=True)
        shifted = start * partition.pow(1.0 - t)
    partition = exp_t(shifted, t).sum(dim=1, keepdim=True)
    normaliser = -log_t(1.0 / partition, t) + mu
    return exp_t(z - normaliser, t)


class _BiTempered(torch.autograd.Function):
    """Per-sample values, with the official custom gradient with respect to the logits."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, targets: torch.Tensor, t1: float, t2: float) -> torch.Tensor:
        p = tempered_softmax(z, t2)
        if t1 == 1.0 and t2 == 1.0:  # cross entropy: log p_y from log_softmax, finite where p_y underflows
            log_p_y = torch.log_softmax(z, dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)
        else:
            log_p_y = log_t(p.gather(1, targets.unsqueeze(1)).squeeze(1), t1)  # log_t1 of p_y
        labels_term = log_t(1.0 + LABEL_OFFSET, t1) - log_p_y
        power = 2.0 - t1
        values = labels_term - (1.0 - p.pow(power).sum(dim=1)) / power
        ctx.save_for_backward(p, targets)
        ctx.t1, ctx.t2 = t1, t2
        return values

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        p, targets = ctx.saved_tensors
        delta = p.scatter_add(1, targets.unsqueeze(1), -torch.ones_like(p[:, :1]))  # p - y
        forget = p.pow(ctx.t2 - ctx.t1)
        escorts = p.pow(ctx.t2)
        escorts = escorts / escorts.sum(dim=1, keepdim=True)
        weighted = delta * forget
        derivative = weighted - escorts * weighted.sum(dim=1, keepdim=True)
        return grad_out.unsqueeze(1) * derivative, None, None, None


@dataclass(frozen=True)
class BiTemperedLogistic:
    """sum_k [y_k (log_t1(y_k + 1e-10) - log_t1(p_k)) - (y_k^(2-t1) - p_k^(2-t1)) / (2-t1)], p tempered by t2."""

    t1: float
    t2: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return _BiTempered.apply(probs.logits, probs.targets, self.t1, self.t2)
