"""Registers the losses published after APL: terms (composable as '<first>+<second>'), the epsilon-softmax
composites, sparse regularisation and the LogitClip wrapper ``lc-<loss>``; docs/losses.md lists each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import recent, terms
from .base import Loss, LossInfo, Probabilities, check_inputs, float_logits, reduce
from .bitempered import BiTemperedLogistic
from .zoo import COMPOSITES, POSITIVE, RULES, UNIT_Q, CompositeDef, Rule, TermDef, _term

EPS = "Wang et al., NeurIPS 2024 (cswjl/eps-softmax)"
LC = "Wei et al., ICML 2023 (hongxin001/LogitClip)"
SR = "Zhou et al., ICCV 2021 (hitcszx/lnl_sr)"
JS = "Englesson & Azizpour, NeurIPS 2021 (ErikEnglesson/GJS)"
JAL = "Wang et al., Joint Asymmetric Loss (cswjl/joint-asymmetric-loss)"

_term("ece", "active", True, "epsilon-softmax CE, -log((p_y + m 1[y=argmax p])/(m+1)), clamped at 1e-8", EPS,
      lambda k, f, m: recent.EpsilonCrossEntropy(m), m=1e5)
_term("efl", "active", True, "epsilon-softmax focal loss, -(1-p'_y)^gamma log p'_y (factor detached)", EPS,
      lambda k, f, m, gamma: recent.EpsilonFocal(m, gamma), m=1e5, gamma=0.1)
_term("tce", "active", True, "Taylor cross entropy, sum_{k=1..order} (1-p_y)^k / k", "Feng et al., IJCAI 2020",
      lambda k, f, order: recent.TaylorCrossEntropy(order), order=2)
_term("poly1", "active", False, "Poly-1, -log p_y + epsilon (1-p_y)", "Leng et al., ICLR 2022",
      lambda k, f, epsilon: recent.PolyOne(epsilon), epsilon=1.0)
_term("gls", "active+passive", False, "generalised label smoothing, (1-r) CE + r mean_k(-log p_k); r<0: NLS",
      "Wei et al., ICML 2022 (UCSC-REAL/negative-label-smoothing)",
      lambda k, f, smooth_rate: recent.GeneralisedLabelSmoothing(smooth_rate), smooth_rate=0.1)
_term("js", "active+passive", True, "scaled Jensen-Shannon, Z [pi KL(e_y||m) + (1-pi) KL(p||m)], one view", JS,
      lambda k, f, pi: recent.JensenShannon(pi), pi=0.5)
_term("bitempered", "active+passive", False, "bi-tempered logistic loss, t1 (bounded if < 1), t2 (tail)",
      "Amid et al., NeurIPS 2019 (google/bi-tempered-loss)",
      lambda k, f, t1, t2: BiTemperedLogistic(t1, t2), t1=0.8, t2=1.2)
_term("ldr-kl", "passive", True, "LDR-KL, lamb log mean_k exp((margin 1[k!=y] + s_k - s_y)/lamb), s normalised softplus",
      "Zhu et al., ICML 2023 (LDRLoss_V1)", lambda k, f, margin, lamb: recent.LabelDistributionRobustKL(margin, lamb),
      rules={"lamb": POSITIVE}, margin=0.1, lamb=10.0)

_term("amse", "passive", True, "asymmetric MSE, (1/K) sum_k (p_k - a 1[k=y])^2", JAL,
      lambda k, f, a: recent.AsymmetricMeanSquare(a), a=30.0)

for _name, _active in (("jal-ce", "nce"), ("jal-fl", "nfl")):
    COMPOSITES[_name] = CompositeDef(
        LossInfo(_name, "active+passive", True, f"alpha*{_active.upper()} + beta*AMSE + delta*||theta||_1", JAL),
        (_active, "amse"), {"alpha": 1.0, "beta": 1.0, "delta": 0.0})

for _name, _active in (("ece+mae", "ece"), ("efl+mae", "efl")):
    COMPOSITES[_name] = CompositeDef(
        LossInfo(_name, "active+passive", True, f"alpha*{_active.upper()} + beta*2(1-p_y) (the official MAE)", EPS),
        (_active, "mae"), {"alpha": 1.0, "beta": 1.0}, part_options={"mae": {"doubled": True}})


@dataclass(frozen=True)
class SpecialDef:
    """A loss with its own class (not a weighted sum of terms on the model's logits): parameters and factory."""

    info: LossInfo
    make: Callable[..., Loss]  # (info, num_classes, reduction, recorded) -> Loss
    defaults: dict[str, float] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)

    def rule(self, name: str) -> Rule:
        return self.rules.get(name, RULES[name])


class SparseRegularised(Loss):
    """CE or GCE on tau-normalised logits z/(tau ||z||) + lamb_e sum_k p_k^p, lamb_e = lamb rho^(epoch // freq).

    lamb_e is a pure function of the epoch (set by ``on_epoch_start``), so a resumed run gets it back.
    """

    def __init__(self, info: LossInfo, num_classes: int, reduction: str, params: dict[str, object], base):
        super().__init__(info, num_classes, reduction, params)
        self.base = base
        self.penalty_term = recent.SparsePenalty(float(params["p"]))  # type: ignore[arg-type]
        self.weight = float(params["lamb"])  # type: ignore[arg-type]

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        p = self.params
        self.weight = float(p["lamb"]) * float(p["rho"]) ** (epoch // int(p["freq"]))  # type: ignore[arg-type]

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_inputs(logits, targets, self.num_classes)
        logits = float_logits(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            probs = Probabilities(F.normalize(logits, dim=1) / float(self.params["tau"]), targets)  # type: ignore
            return reduce(self.base(probs) + self.weight * self.penalty_term(probs), self.reduction)


def _sparse(base: Callable[[dict], object]) -> Callable[..., Loss]:
    return lambda info, k, reduction, recorded: SparseRegularised(info, k, reduction, recorded, base(recorded))


SR_DEFAULTS = {"tau": 0.5, "p": 0.1, "lamb": 1.2, "rho": 1.03, "freq": 1}  # the CIFAR-10 settings of lnl_sr
SPECIAL: dict[str, SpecialDef] = {
    "ce+sr": SpecialDef(LossInfo("ce+sr", "active+passive", True,
                                 "CE(z/(tau||z||)) + lamb_e sum_k p_k^p, lamb_e = lamb rho^(epoch//freq)", SR),
                        _sparse(lambda r: terms.CrossEntropy()), dict(SR_DEFAULTS)),
    "gce+sr": SpecialDef(LossInfo("gce+sr", "active+passive", True,
                                  "GCE_q(z/(tau||z||)) + lamb_e sum_k p_k^p, lamb_e = lamb rho^(epoch//freq)", SR),
                         _sparse(lambda r: terms.GeneralizedCrossEntropy(float(r["q"]))),
                         {**SR_DEFAULTS, "q": 0.01}, {"q": UNIT_Q}),
}

#: ``lc-<loss>``: LogitClip around any other loss (not around another ``lc-``).
CLIP_PREFIX = "lc-"
#: The clipped losses ``aplab losses`` lists (any ``lc-<loss>`` builds).
LISTED_CLIPS = ("lc-ce",)
#: hongxin001/LogitClip adds 1e-7 to the norm.
CLIP_NORM_OFFSET = 1e-7
#: The parameter LogitClip adds to the loss it wraps, with its rule (never made: a wrapper, not a term).
CLIP_PART = TermDef(info=LossInfo("lc", "active", True, "LogitClip", LC), make=lambda *a: None,
                    defaults={"tau": 1.0})


def clip_logits(z: torch.Tensor, tau: float) -> torch.Tensor:
    """The official clipping: where ||z||_2 + 1e-7 > tau, z / (||z||_2 + 1e-7) / tau; elsewhere z unchanged."""
    norms = torch.linalg.vector_norm(z, ord=2, dim=1, keepdim=True) + CLIP_NORM_OFFSET
    return torch.where(norms > tau, z / norms * (1.0 / tau), z)


def clip_info(inner: LossInfo) -> LossInfo:
    """LogitClip of ``inner``: its kind, and bounded (the paper's guarantee) whatever ``inner`` is."""
    return LossInfo(CLIP_PREFIX + inner.name, inner.kind, True,
                    f"LogitClip(tau) of {inner.name}: ||z|| > tau clipped to 1/tau", LC)


class LogitClipped(Loss):
    """Any built loss called on logits clipped in norm (LogitClip); the engine hooks go to that loss."""

    def __init__(self, info: LossInfo, inner: Loss, params: dict[str, object]):
        super().__init__(info, inner.num_classes, inner.reduction, params)
        self.inner = inner
        self.tau = float(params["tau"])  # type: ignore[arg-type]

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.inner.on_epoch_start(epoch, epochs)

    def observe_labels(self, labels) -> None:
        self.inner.observe_labels(labels)

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        return self.inner.penalty(model)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_inputs(logits, targets, self.num_classes)
        logits = float_logits(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self.inner(clip_logits(logits, self.tau), targets)

