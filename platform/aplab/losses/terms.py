"""Per-sample loss terms, exactly as the paper's reference code computes them (see docs/losses.md).

Each term maps shared :class:`Probabilities` to ``[N]`` losses. ``fidelity`` picks between the
authors' code constants (the default, which produced the paper's tables) and the paper's text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import LOG_PROB_FLOOR, RCE_A_CODE, RCE_A_PAPER, Fidelity, Probabilities


@dataclass(frozen=True)
class CrossEntropy:
    """CE = -log p_y."""

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return -probs.log_p_y


@dataclass(frozen=True)
class Focal:
    """FL = -(1 - p_y)^gamma log p_y, with the (1 - p_y)^gamma factor detached as in the reference code."""

    gamma: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return -probs.one_minus_p_y.detach().pow(self.gamma) * probs.log_p_y


@dataclass(frozen=True)
class MeanAbsoluteError:
    """MAE = sum_k |p_k - q_k| = 2(1 - p_y) in the paper; the code uses half of it, 1 - p_y."""

    fidelity: Fidelity

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        scale = 1.0 if self.fidelity == "code" else 2.0
        return scale * probs.one_minus_p_y


@dataclass(frozen=True)
class ReverseCrossEntropy:
    """RCE = -sum_k p_k log q_k with log 0 := A.

    code: -ln(1e-4) * sum_{k != y} clamp(p_k, 1e-7, 1)  (A = ln 1e-4 = -9.2103);
    paper: -A (1 - p_y) with A = -4.
    """

    fidelity: Fidelity

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        if self.fidelity == "code":
            return -RCE_A_CODE * probs.off_target_sum(probs.p_floored)
        return -RCE_A_PAPER * probs.one_minus_p_y


@dataclass(frozen=True)
class GeneralizedCrossEntropy:
    """GCE = (1 - p_y^q) / q with p clamped to [1e-7, 1] (Zhang & Sabuncu, 2018)."""

    q: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        p_y_q = torch.exp(self.q * probs.log_p_y.clamp(min=LOG_PROB_FLOOR))  # only the label's entry
        return (1.0 - p_y_q) / self.q


@dataclass(frozen=True)
class NormalizedCrossEntropy:
    """NCE = log p_y / sum_k log p_k, in [0, 1]; sums to 1 over all labels."""

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return probs.log_p_y / probs.log_p.sum(dim=1)


@dataclass(frozen=True)
class NormalizedFocal:
    """NFL = FL(y) / sum_k FL(k), every (1 - p)^gamma factor detached as in the reference code."""

    gamma: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        weights = (-torch.expm1(probs.log_p)).detach().pow(self.gamma)
        focal = -weights * probs.log_p
        return focal.gather(1, probs.index).squeeze(1) / focal.sum(dim=1)


@dataclass(frozen=True)
class NormalizedGeneralizedCrossEntropy:
    """NGCE = (1 - p_y^q) / (K - sum_k p_k^q), p clamped to [1e-7, 1] as in the reference code."""

    q: float
    num_classes: int

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        powered = probs.floored_pow(self.q)
        numerator = 1.0 - powered.gather(1, probs.index).squeeze(1)
        return numerator / (self.num_classes - powered.sum(dim=1))


@dataclass(frozen=True)
class NormalizedMeanAbsoluteError:
    """NMAE = MAE(y) / sum_k MAE(k) = (1 - p_y) / (K - 1) under either fidelity.

    The reference code divides by 2(K - 1) instead, so its NMAE sums to 1/2 over labels; we normalise.
    """

    num_classes: int

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return probs.one_minus_p_y / (self.num_classes - 1)


@dataclass(frozen=True)
class NormalizedReverseCrossEntropy:
    """NRCE = RCE(y) / sum_k RCE(k) for the fidelity's RCE.

    code: sum_{k != y} c_k / ((K - 1) sum_k c_k) with c = clamp(p, 1e-7, 1); paper: (1 - p_y) / (K - 1).
    The reference code multiplies RCE by (K - 1)/4 instead of dividing; that defect is not inherited.
    """

    fidelity: Fidelity
    num_classes: int

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        if self.fidelity == "code":
            floored = probs.p_floored
            return probs.off_target_sum(floored) / ((self.num_classes - 1) * floored.sum(dim=1))
        return probs.one_minus_p_y / (self.num_classes - 1)


# ----------------------------------------------------------------------------- successors of APL
# Active Negative Loss (Ye et al., NeurIPS 2023) and asymmetric losses (Zhou et al., ICML 2021), with the
# clamps of their official code (Virusdoll/Active-Negative-Loss loss.py, hitcszx/ALFs lnl/losses.py).


@dataclass(frozen=True)
class NormalizedNegativeCrossEntropy:
    """NNCE = 1 - v_y / sum_k v_k, v_k = -log(min_prob) + log clamp(p_k, min_prob, high).

    high = 1, or 1 - min_prob inside ANL-CE-ER (its official code clamps both ends there).
    """

    min_prob: float
    clamp_top: bool = False

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        high = 1.0 - self.min_prob if self.clamp_top else 1.0
        shifted = -math.log(self.min_prob) + probs.p.clamp(min=self.min_prob, max=high).log()
        return 1.0 - shifted.gather(1, probs.index).squeeze(1) / shifted.sum(dim=1)


@dataclass(frozen=True)
class NormalizedNegativeFocal:
    """NNFL = 1 - (A - FL_y) / (K A - sum_k FL_k) on log p clamped at log(min_prob), (1 - p)^gamma detached;
    A = -(1 - min_prob)^gamma log(min_prob), the focal loss of a probability at the floor."""

    gamma: float
    min_prob: float
    num_classes: int

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        log_floor = math.log(self.min_prob)
        log_p = probs.log_p.clamp(min=log_floor)
        focal = -(-torch.expm1(log_p.detach())).pow(self.gamma) * log_p
        floor = -((1.0 - self.min_prob) ** self.gamma) * log_floor
        focal_y = focal.gather(1, probs.index).squeeze(1)
        return 1.0 - (floor - focal_y) / (self.num_classes * floor - focal.sum(dim=1))


@dataclass(frozen=True)
class AsymmetricGeneralizedCrossEntropy:
    """AGCE = ((a + 1)^q - (a + p_y)^q) / q (no clamp, as in the official code)."""

    a: float
    q: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return ((self.a + 1.0) ** self.q - (self.a + probs.p_y).pow(self.q)) / self.q


@dataclass(frozen=True)
class AsymmetricUnhingedLoss:
    """AUL = ((a - p_y)^q - (a - 1)^q) / q, a > 1 (the official code's AUELoss)."""

    a: float
    q: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return ((self.a - probs.p_y).pow(self.q) - (self.a - 1.0) ** self.q) / self.q


@dataclass(frozen=True)
class AsymmetricExponentialLoss:
    """AEL = exp(-p_y / a)."""

    a: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        return torch.exp(-probs.p_y / self.a)


#: ANorm's official code clamps probabilities at 1e-5 (not 1e-7).
ANORM_FLOOR = 1e-5


@dataclass(frozen=True)
class AsymmetricNorm:
    """ANorm = (sum_k |a 1[k=y] - p'_k|^p - (a - 1)^p) / p with p' = clamp(p, 1e-5, 1), a > 1."""

    a: float
    p: float

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        floored = probs.p.clamp(min=ANORM_FLOOR, max=1.0)
        target = torch.zeros_like(floored).scatter(1, probs.index, self.a)
        return ((target - floored).abs().pow(self.p).sum(dim=1) - (self.a - 1.0) ** self.p) / self.p


@dataclass(frozen=True)
class BatchEntropyRegulariser:
    """ANL-CE-ER's lamb term: log K + sum_c pbar_c log pbar_c, pbar the batch's class distribution.

    A batch statistic, not a per-sample loss: every sample carries the batch's value, so the mean
    over the batch equals the official loss.
    """

    min_prob: float
    num_classes: int

    def __call__(self, probs: Probabilities) -> torch.Tensor:
        low, high = self.min_prob, 1.0 - self.min_prob
        clamped = probs.p.clamp(min=low, max=high)
        classes = (clamped.sum(dim=0) / clamped.sum()).clamp(min=low, max=high)
        value = math.log(self.num_classes) + (classes * classes.log()).sum()
        return value.expand(probs.targets.shape[0])
