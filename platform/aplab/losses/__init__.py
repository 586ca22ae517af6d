"""The loss zoo: every loss of Ma et al. (ICML 2020) and its baselines, exact and shared-softmax fast.

``build("nce+rce", num_classes=10, alpha=1, beta=1)`` returns an ``nn.Module`` called as
``loss(logits [N, K], targets [N])`` that returns the mean loss (``reduction="none"``: the [N] losses).
"""

from __future__ import annotations

from .api import RobustLoss, available, build, info, loss_table
from .base import FIDELITIES, LossInfo

__all__ = ["FIDELITIES", "LossInfo", "RobustLoss", "available", "build", "info", "loss_table"]
