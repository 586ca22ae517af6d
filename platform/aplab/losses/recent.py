"""Per-sample terms of the robust losses published after APL, with the clamps of each official code.

Each maps shared :class:`Probabilities` to ``[N]`` losses, like ``terms.py``; docs/losses.md ("Losses
since APL") gives each formula, its source and what differs from the official code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Probabilities

#: cswjl/eps-softmax clamps the epsilon-softmax output at 1e-8 before the log.
EPS_SOFTMAX_FLOOR = 1e-8
#: ErikEnglesson/GJS clamps the mixture (and the prediction inside the KL) at 1e-7 before the log.
JS_FLOOR = 1e-7


def _eps_softmax_label(probs: Probabilities, m: float) -> torch.Tensor:
    """p'_y = (p_y + m 1[y = argmax p]) / (m + 1), clamped at 1e-8 (only the label's entry is ever read)."""
    top = (probs.p.argmax(dim=1) == probs.targets).to(probs.p.dtype)
    return ((probs.p_y + m * top) / (m + 1.0)).clamp(min=EPS_SOFTMAX_FLOOR)


@dataclass(frozen=True)
class EpsilonCrossEntropy:
    """ECE = -log p'_y, p' the epsilon-softmax (Wang et al., NeurIPS 2024), m = 1/epsilon."""

    m: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return -_eps_softmax_label(probs, self.m).log()


@dataclass(frozen=True)
class EpsilonFocal:
    """EFL = -(1 - p'_y)^gamma log p'_y on the epsilon-softmax, the factor detached as in the official code."""

    m: float
    gamma: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        log_p = _eps_softmax_label(probs, self.m).log()
        return -(1.0 - log_p.detach().exp()).pow(self.gamma) * log_p


@dataclass(frozen=True)
class TaylorCrossEntropy:
    """Taylor CE = sum_{k=1}^{order} (1 - p_y)^k / k, CE's series cut at ``order`` (Feng et al., IJCAI 2020)."""

    order: int

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        u = probs.one_minus_p_y
        return sum(u.pow(k) / k for k in range(1, self.order + 1))


@dataclass(frozen=True)
class PolyOne:
    """Poly-1 = -log p_y + epsilon (1 - p_y) (Leng et al., ICLR 2022)."""

    epsilon: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return -probs.log_p_y + self.epsilon * probs.one_minus_p_y


@dataclass(frozen=True)
class GeneralisedLabelSmoothing:
    """GLS = (1 - r)(-log p_y) + r (-(1/K) sum_k log p_k); r < 0 is negative label smoothing (Wei et al. 2022)."""

    smooth_rate: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        r = self.smooth_rate
        return (1.0 - r) * -probs.log_p_y + r * -probs.log_p.mean(dim=1)


@dataclass(frozen=True)
class JensenShannon:
    """Scaled JS = Z [pi KL(e_y || m) + (1 - pi) KL(p || m)], m = pi e_y + (1 - pi) p, Z = -1/((1-pi) log(1-pi)).

    As ErikEnglesson/GJS computes it (JSWCS, one prediction): logs of m and p clamped at 1e-7, and a
    KL term only where its first argument is positive.
    """

    pi: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        pi = self.pi
        p = probs.p
        mixture = (1.0 - pi) * p + pi * F.one_hot(probs.targets, p.shape[1]).to(p.dtype)
        log_m = mixture.clamp(JS_FLOOR, 1.0).log()
        to_label = -log_m.gather(1, probs.index).squeeze(1)  # KL(e_y || m): log 1 - log m_y
        inner = p * (p.clamp(min=JS_FLOOR).log() - log_m)
        to_prediction = torch.where(p > 0, inner, torch.zeros_like(inner)).sum(dim=1)
        scale = -1.0 / ((1.0 - pi) * math.log(1.0 - pi))
        return scale * (pi * to_label + (1.0 - pi) * to_prediction)


@dataclass(frozen=True)
class LabelDistributionRobustKL:
    """LDR-KL = lamb log((1/K) sum_k exp((margin 1[k != y] + s_k - s_y) / lamb)), s = K softplus(z) / sum softplus(z).

    As LDRLoss_V1 (Zhu et al., ICML 2023; the copy in cswjl/eps-softmax losses.py) computes it.
    """

    margin: float
    lamb: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        soft = F.softplus(probs.logits)
        scores = soft / soft.mean(dim=1, keepdim=True)
        shifted = scores - scores.gather(1, probs.index) + self.margin
        shifted = shifted.scatter(1, probs.index, 0.0)  # the label's own entry has no margin and s_y - s_y = 0
        k = probs.logits.shape[1]
        return self.lamb * (torch.logsumexp(shifted / self.lamb, dim=1) - math.log(k))


@dataclass(frozen=True)
class AsymmetricMeanSquare:
    """AMSE = (1/K) sum_k (p_k - a 1[k = y])^2: the official AMSELoss takes the mean over classes too."""

    a: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        target = torch.zeros_like(probs.p).scatter(1, probs.index, self.a)
        return (probs.p - target).pow(2).mean(dim=1)


@dataclass(frozen=True)
class SparsePenalty:
    """sum_k clamp(p_k, 1e-7, 1)^p, the p-norm of sparse regularisation (hitcszx/lnl_sr norm.py)."""

    p: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return probs.p.clamp(min=1e-7, max=1.0).pow(self.p).sum(dim=1)
