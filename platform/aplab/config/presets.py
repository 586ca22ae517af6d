"""The type of a dataset's training preset (official_settings.md, successors.md), pure data.

Each dataset module (``aplab.data.sources``) registers its preset with its loader; ``aplab.data.presets``
reads them (``preset_for``, ``loss_params``) and ``config.resolve`` fills unset fields from them.
Choices that follow ``loss.fidelity`` live in ``paper``: MNIST's APL beta (code 10, paper text 100),
CIFAR-100's ResNet (code 50, paper 34), CIFAR-100's beta of the ``+MAE`` losses (the official configs
1.0, the paper's text 0.1) and MNIST's optimiser (configs: weight decay 1e-2, Nesterov, cosine floor
1e-3; text: 1e-3, neither). ``code_per_loss`` holds a config that differs for one loss (MNIST's NLNL:
weight decay 1e-3). The successors' settings (ANL, Ye et al. 2023; asymmetric losses, Zhou et al. 2021)
come from their official configs and apply to their losses only: ANL trains with weight decay 0, both
use ResNet-34 on CIFAR-100, and ``successor_training`` holds their settings where APL's configs differ
(MNIST: weight decay 1e-3, no Nesterov, floor 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetPreset:
    """Training defaults of one dataset."""

    model: str
    epochs: int
    lr: float
    weight_decay: float
    augment: str
    batch_size: int = 128
    nesterov: bool = False
    schedule: str = "cosine"
    eta_min: float | None = None  # the cosine schedule's floor (None: 0)
    apl: tuple[float, float] = (1.0, 1.0)  # (alpha, beta) of APL losses
    apl_beta_with_mae: float | None = None  # beta of the +MAE losses where it differs from the APL beta
    sce: tuple[float, float] = (0.1, 1.0)
    ngce_q: float = 0.7
    successors: dict[str, dict[str, float]] = field(default_factory=dict)  # loss name -> its parameters
    successor_model: str | None = None  # the successors' model where it differs from APL's
    paper: dict[str, object] = field(default_factory=dict)  # overrides under fidelity="paper"
    code_per_loss: dict[str, dict[str, object]] = field(default_factory=dict)  # loss -> overrides under "code"
    successor_training: dict[str, object] = field(default_factory=dict)  # the successors' configs' own settings


#: Losses of Active Negative Loss (Ye et al., NeurIPS 2023): their configs set weight decay 0.
ANL_LOSSES = ("anl-ce", "anl-fl", "anl-ce-er")
#: Losses whose official configs replace weight decay by an L1 penalty (ANL; the Joint Asymmetric Loss).
L1_PENALTY_LOSSES = (*ANL_LOSSES, "jal-ce", "jal-fl")


def anl_settings(alpha: float, beta: float, delta: float, lamb: float | None = None) -> dict[str, dict[str, float]]:
    """ANL-CE and ANL-FL share (alpha, beta, delta); ANL-CE-ER adds lamb where the paper gives one."""
    shared = {"alpha": alpha, "beta": beta, "delta": delta}
    settings = {"anl-ce": shared, "anl-fl": shared}
    if lamb is not None:
        settings["anl-ce-er"] = {**shared, "lamb": lamb}
    return settings
