"""NLNL (Kim et al., ICCV 2019): negative learning with complementary labels, run in three stages.

How the stages run: the engine calls ``on_epoch_start(epoch, epochs)`` before every epoch, and the
stage is a pure function of the training progress ``epoch / epochs``:

* ``nl``    (progress < ``nl_until``, default 0.5): the sum of -log(1 - p_c) over ``ln_neg`` complementary
  labels c, drawn uniformly from the classes other than the (noisy) label, fresh every batch, weighted
  by max_k n_k / n_y (Kim et al.'s inverse frequency of the noisy label, set by ``observe_labels``);
* ``selnl`` (progress < ``selnl_until``, default 0.8): the same, only on samples with p_y > 1/K;
* ``selpl`` (the rest): cross entropy, only on samples with p_y > ``pl_threshold`` (default 0.5).

A stage-masked mean divides by the number of selected samples (at least 1), so a batch with no
selected sample gives 0, never NaN (the reference implementation returns NaN on PyTorch >= 1.11).
The stage split is aplab's choice: Kim et al. (and the authors' configs, 720-2000 epochs) run NL to
convergence before switching.
"""

from __future__ import annotations

import torch

from .base import Probabilities

STAGES = ("nl", "selnl", "selpl")
ONE_MINUS_P_FLOOR = 1e-5  # Kim et al. clamp 1 - p at 1e-5 inside the log


class NLNLTerm:
    """The stage-dependent per-sample NLNL loss and its selection mask."""

    def __init__(self, num_classes: int, ln_neg: int, nl_until: float, selnl_until: float, pl_threshold: float):
        self.num_classes = num_classes
        self.ln_neg = ln_neg
        self.nl_until = nl_until
        self.selnl_until = selnl_until
        self.pl_threshold = pl_threshold
        self.stage = "nl"
        self.class_weights: torch.Tensor | None = None

    def observe_labels(self, labels) -> None:
        """Weight each sample's NL loss by max_k n_k / n_(its noisy label), as Kim et al. do."""
        counts = torch.bincount(torch.as_tensor(labels, dtype=torch.int64), minlength=self.num_classes).double()
        self.class_weights = counts.max() / counts.clamp(min=1.0)

    def set_progress(self, epoch: int, epochs: int) -> None:
        progress = epoch / max(epochs, 1)
        self.stage = "nl" if progress < self.nl_until else "selnl" if progress < self.selnl_until else "selpl"

    def per_sample(self, probs: Probabilities) -> tuple[torch.Tensor, torch.Tensor]:
        """(losses [N], selection mask [N] as float)."""
        targets = probs.targets
        if self.stage == "selpl":
            mask = (probs.p_y > self.pl_threshold).to(probs.log_p.dtype)
            return -probs.log_p_y * mask, mask
        offsets = torch.randint(1, self.num_classes, (targets.shape[0], self.ln_neg), device=targets.device)
        complementary = (targets.unsqueeze(1) + offsets) % self.num_classes
        p_c = probs.p.gather(1, complementary)
        losses = -torch.log((1.0 - p_c).clamp(min=ONE_MINUS_P_FLOOR, max=1.0)).sum(dim=1)
        if self.class_weights is not None:
            losses = losses * self.class_weights.to(losses)[targets]
        if self.stage == "nl":
            mask = torch.ones_like(losses)
        else:
            mask = (probs.p_y > 1.0 / self.num_classes).to(losses.dtype)
        return losses * mask, mask
