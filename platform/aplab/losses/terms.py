"""Per-sample loss terms, exactly as the paper's reference code computes them (see docs/losses.md).

Each term maps shared :class:`Probabilities` to ``[N]`` losses. ``fidelity`` picks between the
authors' code constants (the default, which produced the paper's tables) and the paper's text.
"""

from __future__ import annotations

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
