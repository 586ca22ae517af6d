"""The loss zoo: every loss of Ma et al. (ICML 2020), its baselines and its successors, exact and shared-softmax fast.

``build("nce+rce", num_classes=10, alpha=1, beta=1)`` returns an ``nn.Module`` called as
``loss(logits [N, K], targets [N])`` that returns the mean loss (``reduction="none"``: the [N] losses).
Every built loss has the engine hooks of :class:`LossHooks` (``on_epoch_start``, ``observe_labels``,
``penalty``).
"""

from __future__ import annotations

from . import settings
from .api import RobustLoss, available, build, info, loss_table, parameters
from .base import FIDELITIES, Loss, LossHooks, LossInfo
from .nlnl import NLNLLoss

__all__ = ["FIDELITIES", "Loss", "LossHooks", "LossInfo", "NLNLLoss", "RobustLoss", "available", "build", "info",
           "loss_table", "parameters", "settings"]
