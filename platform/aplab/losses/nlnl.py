"""NLNL (Kim et al., ICCV 2019): negative learning with complementary labels, optionally in three stages.

The stage is a pure function of the training progress ``epoch / epochs`` (the engine calls
``on_epoch_start(epoch, epochs)`` before every epoch):

* ``nl``    (progress < ``nl_until``): the sum of -log clamp(1 - p_c, 1e-5, 1) over ``ln_neg``
  complementary labels c, drawn uniformly from the classes other than the (noisy) label, fresh every
  batch, weighted by max_k n_k / n_y (the inverse frequency of the noisy label, set by ``observe_labels``);
* ``selnl`` (progress < ``selnl_until``): the same, only on samples with p_y > 1/K;
* ``selpl`` (the rest): cross entropy, only on samples with p_y > ``pl_threshold``.

Schedules: ``fidelity="code"`` follows the APL authors' code, negative learning only for the whole run
(``nl_until = selnl_until = 1``); ``fidelity="paper"`` (or setting the fractions) runs Kim et al.'s three
stages, by default switching to selective NL at 50% and selective PL at 80% of the epochs (aplab's split:
Kim et al. run each stage to convergence). A stage-masked mean divides by the number of selected
samples (at least 1), so a batch with no selected sample gives 0, never NaN (the reference
implementation returns NaN on PyTorch >= 1.11).
"""

from __future__ import annotations

import torch

from .base import Loss, LossInfo, Probabilities, check_inputs, float_logits, reduce

ONE_MINUS_P_FLOOR = 1e-5  # Kim et al. clamp 1 - p at 1e-5 inside the log
#: Stage boundaries by fidelity: the APL code runs NL only; the three-stage schedule is Kim et al.'s.
SCHEDULES: dict[str, dict[str, float]] = {
    "code": {"nl_until": 1.0, "selnl_until": 1.0},
    "paper": {"nl_until": 0.5, "selnl_until": 0.8},
}
DEFAULTS: dict[str, float] = {"ln_neg": 1, "pl_threshold": 0.5}


class NLNLLoss(Loss):
    """The stage-dependent NLNL loss; per-sample values are zero for samples the stage does not select."""

    def __init__(self, info: LossInfo, num_classes: int, reduction: str, params: dict[str, object]):
        super().__init__(info, num_classes, reduction, params)
        self.ln_neg = int(params["ln_neg"])  # type: ignore[call-overload]
        self.nl_until = float(params["nl_until"])  # type: ignore[arg-type]
        self.selnl_until = float(params["selnl_until"])  # type: ignore[arg-type]
        self.pl_threshold = float(params["pl_threshold"])  # type: ignore[arg-type]
        self.stage = "nl"
        self.class_weights: torch.Tensor | None = None

    def observe_labels(self, labels) -> None:
        """Weight each sample's NL loss by max_k n_k / n_(its noisy label), as Kim et al. do."""
        counts = torch.bincount(torch.as_tensor(labels, dtype=torch.int64), minlength=self.num_classes).double()
        self.class_weights = counts.max() / counts.clamp(min=1.0)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        progress = epoch / max(epochs, 1)
        self.stage = "nl" if progress < self.nl_until else "selnl" if progress < self.selnl_until else "selpl"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_inputs(logits, targets, self.num_classes)
        logits = float_logits(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            losses, mask = self.per_sample(Probabilities(logits, targets))
            if self.reduction == "mean":
                return losses.sum() / mask.sum().clamp(min=1.0)
            return reduce(losses, self.reduction)

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
            if self.class_weights.device != losses.device or self.class_weights.dtype != losses.dtype:
                self.class_weights = self.class_weights.to(losses)  # once, not a host copy every batch
            losses = losses * self.class_weights[targets]
        if self.stage == "nl":
            mask = torch.ones_like(losses)
        else:
            mask = (probs.p_y > 1.0 / self.num_classes).to(losses.dtype)
        return losses * mask, mask
